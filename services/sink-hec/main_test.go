package sinkhec

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/pkg/pipeline/pipelinetest"
)

func TestMain(m *testing.M) {
	if pipelinetest.IsChild() { // a sink process of the conformance suite
		os.Exit(pipelinetest.RunChild(buildChild))
	}
	goleak.VerifyTestMain(m)
}
