package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/internal/control"
	"github.com/faciofs/faciofs/store"
)

func checkNameArg(name string) error {
	if store.ValidName(name) != nil {
		return usagef("invalid credential name (not repeated here, in case it was a value): use 1 to 128 characters from A-Z, a-z, 0-9 and _, not starting with a digit")
	}
	return nil
}

func newRequestCommand(g *globals) *cobra.Command {
	var label string
	c := &cobra.Command{
		Use:   "request NAME [--label TEXT]",
		Short: "Ask a human for a credential; prints ${credentials.NAME} at once (no password needed)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			name := a[0]
			if err := checkNameArg(name); err != nil {
				return err
			}
			b, err := g.backend(cmd, true, false)
			if err != nil {
				return err
			}
			defer b.close()
			var res control.RequestResult
			if err := b.call(&control.Request{Op: control.OpRequest, Name: name, Label: label}, &res); err != nil {
				return controlErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "${credentials.%s}\n", name)
			switch {
			case res.Exists:
				note("%s is already set; nothing pending", name)
			case res.Item != nil:
				note("request %s for %s is pending until %s; a human fulfils it with `faciofs secret set %s`",
					res.Item.ID, name, res.Item.Expires.Local().Format(time.DateTime), name)
			}
			return nil
		},
	}
	c.Flags().StringVar(&label, "label", "", "what the credential is for, shown to the human (no values here)")
	return c
}

func newSecretRmCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Ask for a credential's deletion; nothing is deleted until a human runs `faciofs approve ID`",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			name := a[0]
			if err := checkNameArg(name); err != nil {
				return err
			}
			b, err := g.backend(cmd, true, false)
			if err != nil {
				return err
			}
			defer b.close()
			var res control.RequestResult
			if err := b.call(&control.Request{Op: control.OpSecretRm, Name: name}, &res); err != nil {
				return controlErr(err)
			}
			it := res.Item
			again := ""
			if res.Again {
				again = " (already pending)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deletion of %s requested as item %s%s, pending until %s; a human approves it with `faciofs approve %s`\n",
				name, it.ID, again, it.Expires.Local().Format(time.DateTime), it.ID)
			return nil
		},
	}
}
