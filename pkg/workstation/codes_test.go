package workstation

import "testing"

func TestTables(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codes []int
	}{
		{"event types", func() (c []int) {
			for _, e := range EventTypes {
				c = append(c, e.Code)
			}
			return
		}()},
		{"control elements", func() (c []int) {
			for _, e := range ControlElements {
				c = append(c, e.Code)
			}
			return
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 1; i < len(tc.codes); i++ {
				if tc.codes[i] <= tc.codes[i-1] {
					t.Errorf("code %d after %d: not in ascending order or duplicated", tc.codes[i], tc.codes[i-1])
				}
			}
		})
	}
	if len(EventTypes) != 25 || len(ControlElements) != 21 {
		t.Errorf("got %d event types and %d control elements, want 25 and 21 (seed 004)", len(EventTypes), len(ControlElements))
	}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		code           int
		event, element string
	}{
		{1, "Start", "Window"},
		{43, "DocumentOpen", ""},
		{52, "Invoke", "UrlParam"},
		{97, "HardwareKeyboardEvent", ""},
		{10, "", "Button"},
		{4, "", ""},
	} {
		if got := EventTypeName(tc.code); got != tc.event {
			t.Errorf("EventTypeName(%d) = %q, want %q", tc.code, got, tc.event)
		}
		if got := ControlElementName(tc.code); got != tc.element {
			t.Errorf("ControlElementName(%d) = %q, want %q", tc.code, got, tc.element)
		}
	}
	if e, ok := LookupEventType(60); !ok || e.Group != GroupUIElements {
		t.Errorf("LookupEventType(60) = %+v, %v", e, ok)
	}
	if c, ok := LookupControlElement(10); !ok || len(c.Aliases) != 1 || c.Aliases[0] != "Splitbutton" {
		t.Errorf("LookupControlElement(10) = %+v, %v", c, ok)
	}
}
