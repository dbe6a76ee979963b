package silver_test

import (
	"os"
	"strings"
	"testing"

	"github.com/qoslake/qoslake/silver"
)

// Every silver column is documented in the README.
func TestEveryColumnIsInTheReadme(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, d := range silver.Tables {
		i := strings.Index(readme, "#### `"+d.FullName()+"`")
		if i < 0 {
			t.Fatalf("README has no section for %s", d.FullName())
		}
		section := readme[i:]
		if j := strings.Index(section[1:], "####"); j > 0 {
			section = section[:j]
		}
		for _, c := range d.Columns {
			if !strings.Contains(section, "| `"+c.Name+"` |") {
				t.Errorf("README does not document %s.%s", d.FullName(), c.Name)
			}
		}
	}
}
