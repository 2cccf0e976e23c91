package useragent

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	p := New(2)
	for _, tc := range []struct {
		ua                       string
		browser, os, device      string
		bot                      bool
		versionPrefix, osVersion string
	}{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
			"Chrome", "Windows", Desktop, false, "124.", "10.0"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
			"Safari", "iOS", Mobile, false, "17.4", "17.4"},
		{"Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
			"Safari", "iOS", Tablet, false, "16.6", "16.6"},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot", "", Bot, true, "2.1", ""},
		{"edX/org.edx.mobile (2.26.1; OS Version 11 (Build RP1A.200720.011))", "edX", "", Unknown, false, "", ""},
	} {
		in := p.Parse(tc.ua)
		if in.Browser != tc.browser || in.OS != tc.os || in.DeviceType != tc.device || in.Bot != tc.bot ||
			!strings.HasPrefix(in.BrowserVersion, tc.versionPrefix) || !strings.HasPrefix(in.OSVersion, tc.osVersion) {
			t.Errorf("Parse(%.40q…) = %+v", tc.ua, in)
		}
	}
	if p.Len() != 2 {
		t.Errorf("cache holds %d agents, bound is 2", p.Len())
	}
}

func TestCacheHitIsTheSame(t *testing.T) {
	p := New(10)
	ua := "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
	a, b := p.Parse(ua), p.Parse(ua)
	if a != b || a.Browser != "Firefox" || a.OS != "Linux" {
		t.Fatalf("%+v vs %+v", a, b)
	}
	if New(0).Parse(ua) != a {
		t.Error("uncached parse differs")
	}
	long := strings.Repeat("x", 10*MaxLen)
	p.Parse(long) // cut, not cached whole
	if p.Len() != 2 {
		t.Errorf("len %d", p.Len())
	}
}
