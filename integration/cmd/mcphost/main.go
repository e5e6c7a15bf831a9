// Command mcphost is a minimal MCP host for the integration tests: it reads
// an mcpServers configuration (the format Claude Desktop, Claude Code and
// other hosts use), starts the named server over stdio with the command,
// args and env of the configuration, calls one tool and prints the tool's
// text result.
//
//	mcphost CONFIG SERVER TOOL JSON-ARGUMENTS
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type config struct {
	MCPServers map[string]struct {
		Command string            `json:"command"`
		Args    []string          `json:"args"`
		Env     map[string]string `json:"env"`
	} `json:"mcpServers"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mcphost:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 5 {
		return fmt.Errorf("usage: mcphost CONFIG SERVER TOOL JSON-ARGUMENTS")
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		return err
	}
	var cfg config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("%s: %v", os.Args[1], err)
	}
	srv, ok := cfg.MCPServers[os.Args[2]]
	if !ok {
		return fmt.Errorf("no server %q in %s", os.Args[2], os.Args[1])
	}
	var args map[string]any
	if err := json.Unmarshal([]byte(os.Args[4]), &args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.Command(srv.Command, srv.Args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range srv.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stderr = os.Stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "mcphost", Version: "v1.0.0"}, nil)
	session, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return err
	}
	defer session.Close()
	res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: os.Args[3], Arguments: args})
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("tool error: %v", res.Content)
	}
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			fmt.Println(t.Text)
		}
	}
	return nil
}
