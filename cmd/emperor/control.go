package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/emperor-dev/emperor/emperor"
)

// defaultCommandSocket is where `emperor reload NAME` and friends look for
// the command socket when --socket is not given.
const defaultCommandSocket = "/run/emperor/command.sock"

// control is `emperor reload|stop|start|blacklist-clear|rescan [NAME
// [MONITOR]] [--socket PATH]`: one command to a running Emperor's
// emperor-command-socket.
func control(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	socket := defaultCommandSocket
	var words []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--socket" || a == "-socket":
			if i+1 == len(args) {
				fmt.Fprintln(stderr, "emperor: --socket needs a path")
				return 2
			}
			socket = args[i+1]
			i++
		case strings.HasPrefix(a, "--socket="):
			socket = strings.TrimPrefix(a, "--socket=")
		default:
			words = append(words, a)
		}
	}
	answer, err := emperor.SendCommand(ctx, socket, words...)
	if err != nil {
		fmt.Fprintf(stderr, "emperor %s: %v\n", words[0], err)
		return 1
	}
	fmt.Fprintln(stdout, answer)
	return 0
}
