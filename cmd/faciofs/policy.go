package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/policy"
)

func newPolicyCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "Check a policy file and explain its decisions",
		Args:  args(cobra.NoArgs),
		RunE:  helpOnly,
	}
	c.AddCommand(newPolicyCheckCommand(), newPolicyExplainCommand())
	return c
}

func newPolicyCheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a policy file; errors name the line",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			p, err := policy.Load(a[0])
			if err != nil {
				return problemError{err}
			}
			names := p.ConsumerNames()
			exec := "exec: nothing exposed"
			if ex := p.ExecExpose(); len(ex) > 0 {
				exec = "exec may expose " + strings.Join(ex, ", ")
				if ra := p.ExecRunAs(); ra != nil {
					exec += fmt.Sprintf(" as uid %d gid %d", ra.Uid, ra.Gid)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d consumer rules: %s; missing: %s; %s)\n", a[0], len(names), strings.Join(names, ", "), p.Missing(), exec)
			return nil
		},
	}
}

func newPolicyExplainCommand() *cobra.Command {
	var pid int
	var file, mount string
	c := &cobra.Command{
		Use:   "explain --policy FILE --pid PID PATH",
		Short: "Show which view process PID gets of PATH (relative to the mount root) and why",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if pid <= 0 {
				return usagef("--pid is required")
			}
			if file == "" {
				return usagef("--policy is required until the control socket lands")
			}
			p, err := policy.Load(file)
			if err != nil {
				return err
			}
			rel := a[0]
			if mount != "" && filepath.IsAbs(rel) {
				if r, err := filepath.Rel(mount, rel); err == nil {
					rel = r
				}
			}
			c, err := policy.CallerOf(pid)
			if err != nil {
				return err
			}
			proc, err := policy.NewIdentifier().Identify(c)
			if err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "decision: raw: %v\n", err)
				return nil
			}
			_, text := p.Explain(proc, c, filepath.ToSlash(rel))
			fmt.Fprint(cmd.OutOrStdout(), text)
			return nil
		},
	}
	c.Flags().IntVar(&pid, "pid", 0, "process to explain")
	c.Flags().StringVar(&file, "policy", "", "policy file")
	c.Flags().StringVar(&mount, "mount", "", "mount root, to accept an absolute PATH under it")
	return c
}
