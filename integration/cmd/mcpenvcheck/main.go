// Command mcpenvcheck is a minimal MCP server over stdio for the
// integration tests. Its one tool, check_env, says whether an environment
// variable's SHA-256 matches the one given, so that the value itself never
// travels back to the client: "match", "placeholder" (the variable still
// holds a ${credentials.NAME} placeholder), "mismatch" or "unset".
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log"
	"os"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type checkIn struct {
	Name   string `json:"name" jsonschema:"the environment variable"`
	SHA256 string `json:"sha256" jsonschema:"hex SHA-256 of the expected value"`
}

type checkOut struct {
	Result string `json:"result"`
}

func check(_ context.Context, _ *mcp.CallToolRequest, in checkIn) (*mcp.CallToolResult, checkOut, error) {
	v, ok := os.LookupEnv(in.Name)
	sum := sha256.Sum256([]byte(v))
	switch {
	case !ok:
		return nil, checkOut{"unset"}, nil
	case hex.EncodeToString(sum[:]) == strings.ToLower(in.SHA256):
		return nil, checkOut{"match"}, nil
	case strings.Contains(v, "${credentials."):
		return nil, checkOut{"placeholder"}, nil
	}
	return nil, checkOut{"mismatch"}, nil
}

func main() {
	s := mcp.NewServer(&mcp.Implementation{Name: "mcpenvcheck", Version: "v1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "check_env", Description: "compare an environment variable with a SHA-256"}, check)
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatal(err)
	}
}
