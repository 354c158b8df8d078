package otelsecurehttp_test

import (
	"testing"

	"github.com/securehttp/securehttp/internal/secrettest"
)

// TestExportedTypesPrintNoSecret checks every exported struct type of the
// package (none today: options are functions) so that one added later
// must show that it prints no secret, or say why it holds none.
func TestExportedTypesPrintNoSecret(t *testing.T) {
	t.Parallel()
	secrettest.Package{Dir: "."}.Check(t)
}
