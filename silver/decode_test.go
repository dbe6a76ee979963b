package silver

import "testing"

func TestUserAgentDecoding(t *testing.T) {
	for in, want := range map[string]string{
		"Mozilla/5.0%20(iPhone;%20CPU)":        "Mozilla/5.0 (iPhone; CPU)",
		"Mozilla/5.0%2520(iPhone;%2520CPU)":    "Mozilla/5.0 (iPhone; CPU)", // encoded twice
		"NetSuite/2019.2%2520(SuiteScript)":    "NetSuite/2019.2 (SuiteScript)",
		"bot/1.0%20(+https://example.com/bot)": "bot/1.0 (+https://example.com/bot)",
		"odd%252525agent":                      "odd%25agent", // never more than twice
		"100%":                                 "100%",
		"Mozilla/5.0 (X11; raw spaces)":        "Mozilla/5.0 (X11; raw spaces)",
	} {
		if got := unescapeAgent(in); got != want {
			t.Errorf("unescapeAgent(%q) = %q, want %q", in, got, want)
		}
	}
}
