package silver

import "testing"

func TestAgents(t *testing.T) {
	a, err := NewAgents(100)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ua   string
		want Agent
	}{
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", Agent{"Safari", "Mac OS X", "desktop", false}},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", Agent{"Chrome Mobile", "Android", "mobile", false}},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", Agent{"Googlebot", "", "bot", true}},
		{"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", Agent{"Mobile Safari", "iOS", "tablet", false}},
		{"AppleCoreMedia/1.0.0.21L227 (Apple TV; U; CPU OS 17_4 like Mac OS X; en_us)", Agent{DeviceType: "tv"}},
		{"-", Agent{}},
	} {
		got := a.Parse(tc.ua)
		if tc.want.Browser == "" && tc.want.OS == "" && tc.ua != "-" {
			got.Browser, got.OS = "", ""
		}
		if got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.ua, got, tc.want)
		}
	}
}
