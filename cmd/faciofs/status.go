package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/internal/control"
)

func newStatusCommand(g *globals) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the running mount for the store (paths, policy, counters) and the store's state",
		Args:  args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := g.backend(cmd, false, false)
			if err != nil {
				return err
			}
			defer b.close()
			var st control.Status
			if err := b.call(&control.Request{Op: control.OpStatus}, &st); err != nil {
				return controlErr(err)
			}
			if st.Mounts == nil {
				st.Mounts = []control.Mount{}
			}
			if asJSON {
				return printJSON(cmd, st)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "store: %s (%s)\n", st.Store, st.StoreState)
			if len(st.Mounts) == 0 {
				fmt.Fprintln(out, "mounts: none")
				return nil
			}
			for _, m := range st.Mounts {
				fmt.Fprintf(out, "mount: pid %d, since %s\n", m.Pid, m.Started.Local().Format(time.DateTime))
				fmt.Fprintf(out, "  backing:     %s\n  mountpoint:  %s\n  socket:      %s\n", m.Backing, m.Mountpoint, m.Socket)
				if m.Policy != "" {
					fmt.Fprintf(out, "  policy:      %s (loaded %s)\n", m.Policy, m.PolicyLoaded.Local().Format(time.DateTime))
				} else {
					fmt.Fprintln(out, "  policy:      none (nobody is a consumer)")
				}
				fmt.Fprintf(out, "  credentials: %d\n", m.Credentials)
				k := m.Counters
				fmt.Fprintf(out, "  counters:    opens %d, resolves %d, raw serves %d, denials %d, reverse substitutions %d\n",
					k.Opens, k.Resolves, k.RawServes, k.Denials, k.Reversals)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
