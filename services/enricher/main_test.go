package enricher

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runChild()) // an enricher instance of the scale-out test
	}
	goleak.VerifyTestMain(m)
}
