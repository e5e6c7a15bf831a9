package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/internal/control"
)

func newApprovalsCommand(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "approvals [--json]",
		Short: "List pending requests and deletions waiting for a human",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := g.backend(cmd, false, false)
			if err != nil {
				return err
			}
			defer b.close()
			var items []control.Item
			if err := b.call(&control.Request{Op: control.OpApprovals}, &items); err != nil {
				return controlErr(err)
			}
			if items == nil {
				items = []control.Item{}
			}
			if asJSON {
				return printJSON(cmd, items)
			}
			out := cmd.OutOrStdout()
			if len(items) == 0 {
				fmt.Fprintln(out, "no pending items")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tKIND\tNAME\tASKED BY\tWHEN\tEXPIRES\tLABEL")
			for _, it := range items {
				who := fmt.Sprintf("pid %d uid %d %s", it.Who.Pid, it.Who.Uid, it.Who.Exe)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.ID, it.Kind, it.Name, who,
					it.When.Local().Format(time.DateTime), it.Expires.Local().Format(time.DateTime), dash(it.Label))
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newDecideCommand(g *globals, approve bool) *cobra.Command {
	use, short := "deny ID", "Deny a pending item (needs the master password)"
	if approve {
		use, short = "approve ID", "Approve a pending item, e.g. a deletion (needs the master password)"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			op := control.OpDeny
			if approve {
				op = control.OpApprove
			}
			b, err := g.backend(cmd, true, approve)
			if err != nil {
				return err
			}
			defer b.close()
			pw, err := g.passwordSource().Password("Master password", false)
			if err != nil {
				return err
			}
			defer clear(pw)
			var res control.DecideResult
			if err := b.call(&control.Request{Op: op, ID: a[0], Password: pw}, &res); err != nil {
				return controlErr(err)
			}
			it := res.Item
			out := cmd.OutOrStdout()
			switch {
			case res.Approved && it.Kind == control.KindDelete:
				fmt.Fprintf(out, "approved item %s: deleted %s; its placeholders no longer resolve\n", it.ID, it.Name)
			case res.Approved:
				fmt.Fprintf(out, "approved item %s (%s %s)\n", it.ID, it.Kind, it.Name)
			default:
				fmt.Fprintf(out, "denied item %s (%s %s)\n", it.ID, it.Kind, it.Name)
			}
			return nil
		},
	}
}
