package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/user"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/faciofs/faciofs/internal/daemon"
	"github.com/faciofs/faciofs/internal/mountpoint"
	"github.com/faciofs/faciofs/store"
)

func newMountCommand(g *globals) *cobra.Command {
	var policyFile string
	var verbose, debug bool
	var socketGroup string
	c := &cobra.Command{
		Use:   "mount [--policy FILE] BACKING MOUNTPOINT",
		Short: "Unlock the store and serve BACKING at MOUNTPOINT in the foreground; Ctrl-C or SIGTERM unmounts",
		Args:  args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, a []string) error {
			s, err := store.Open(g.storePath(), store.OpenOptions{})
			if err != nil {
				return err
			}
			defer s.Close()
			gid := 0
			if socketGroup != "" {
				grp, err := user.LookupGroup(socketGroup)
				if err != nil {
					return usagef("--socket-group: %v", err)
				}
				if gid, err = strconv.Atoi(grp.Gid); err != nil || gid == 0 {
					return usagef("--socket-group: %s is not a group other than root's", socketGroup)
				}
			}
			pw, err := g.passwordSource().Password("Master password", false)
			if err != nil {
				return err
			}
			err = daemon.Run(daemon.Options{
				SocketGroup: gid,
				Store:       s,
				Password:    pw,
				PolicyFile:  policyFile,
				Backing:     a[0],
				Mountpoint:  a[1],
				Ready:       cmd.OutOrStdout(),
				Log:         log.New(os.Stderr, "faciofs: ", log.LstdFlags),
				Verbose:     verbose,
				Debug:       debug,
			})
			if errors.Is(err, store.ErrWrongPassword) {
				g.auditWrongPassword(cmd)
			}
			return err
		},
	}
	c.Flags().StringVar(&policyFile, "policy", "", "policy file saying who is a consumer (default: nobody)")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "log every resolution (paths and credential names, never values)")
	c.Flags().BoolVar(&debug, "debug", false, "log every FUSE request")
	c.Flags().StringVar(&socketGroup, "socket-group", "", "let this group use the control socket (request, secret rm, list); changing a value still needs the master password")
	return c
}

func newUnmountCommand() *cobra.Command {
	var lazy bool
	c := &cobra.Command{
		Use:   "unmount MOUNTPOINT",
		Short: "Unmount a faciofs mount, also a stale one left by a killed daemon",
		Args:  args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			mnt := a[0]
			if mountpoint.Stale(mnt) {
				if err := mountpoint.Unmount(mnt, true); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed stale mount at %s\n", mnt)
				return nil
			}
			mounted, fstype, err := mountpoint.Mounted(mnt)
			if err != nil {
				return err
			}
			if !mounted {
				return fmt.Errorf("%s is not a mount point", mnt)
			}
			if fstype != "fuse.faciofs" && fstype != "fuse" {
				return fmt.Errorf("%s is a %s mount, not faciofs; not unmounting it", mnt, fstype)
			}
			if err := mountpoint.Unmount(mnt, lazy); err != nil {
				if errors.Is(err, mountpoint.ErrBusy) {
					return fmt.Errorf("%s: %w", mnt, err)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "unmounted %s\n", mnt)
			return nil
		},
	}
	c.Flags().BoolVar(&lazy, "lazy", false, "detach a busy mount now; the kernel finishes when its last user leaves")
	return c
}
