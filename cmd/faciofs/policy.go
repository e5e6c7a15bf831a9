package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/internal/control"
	"github.com/faciofs/faciofs/policy"
)

func newPolicyCommand(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "Check a policy file, explain its decisions, reload the running mount's policy",
		Args:  args(cobra.NoArgs),
		RunE:  helpOnly,
	}
	c.AddCommand(newPolicyCheckCommand(), newPolicyExplainCommand(g), newPolicyReloadCommand(g))
	return c
}

func newPolicyReloadCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Have the running mount re-read its policy file (as SIGHUP does); a file with errors leaves the policy in force",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := g.askMount(&control.Request{Op: control.OpPolicyReload})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Text)
			return nil
		},
	}
}

// askMount sends a policy request to the running mount.
func (g *globals) askMount(req *control.Request) (control.PolicyResult, error) {
	var res control.PolicyResult
	client, err := control.Dial(g.storePath())
	if errors.Is(err, control.ErrNoMount) {
		return res, problemError{errors.New("no running mount for this store: no policy is in force")}
	}
	if err != nil {
		return res, err
	}
	return res, controlErr(client.Call(req, &res))
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

func newPolicyExplainCommand(g *globals) *cobra.Command {
	var pid int
	var file, mount string
	c := &cobra.Command{
		Use:   "explain [--policy FILE] --pid PID PATH",
		Short: "Show which view process PID gets of PATH (relative to the mount root) and why; without --policy, under the running mount's policy",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if pid <= 0 {
				return usagef("--pid is required")
			}
			if file == "" {
				// The policy in force, asked of the running mount.
				res, err := g.askMount(&control.Request{Op: control.OpPolicyExplain, Pid: pid, Path: a[0]})
				if err != nil {
					return err
				}
				fmt.Fprint(cmd.OutOrStdout(), res.Text)
				return nil
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
	c.Flags().StringVar(&file, "policy", "", "policy file (default: the running mount's policy in force)")
	c.Flags().StringVar(&mount, "mount", "", "mount root, to accept an absolute PATH under it")
	return c
}
