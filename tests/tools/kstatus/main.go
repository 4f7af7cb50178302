// kstatus reads a JSON array of Kubernetes objects on stdin and prints, for each, the
// status that sigs.k8s.io/cli-utils/pkg/kstatus/status computes (what Flux, kpt and
// cli-utils' apply wait on), as a JSON array of {"status", "message"}. Built by
// scripts/install-test-deps; tests/health.rs feeds it objects the operator wrote.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	// Raw first: Unstructured's own decoding keeps integers int64, as the API machinery
	// (and kstatus's generation check) expects.
	var objects []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: reading a JSON array of objects: %v\n", err)
		os.Exit(2)
	}
	out := make([]result, 0, len(objects))
	for i, raw := range objects {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: object %d: %v\n", i, err)
			os.Exit(2)
		}
		r, err := status.Compute(u)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: object %d: %v\n", i, err)
			os.Exit(1)
		}
		out = append(out, result{Status: r.Status.String(), Message: r.Message})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: %v\n", err)
		os.Exit(1)
	}
}
