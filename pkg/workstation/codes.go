// Package workstation holds the code tables of the Operavix/MUAM workstation agent's activity records.
package workstation

// The tables below are transcribed from the vendor's "User Data Logging"
// page (seed 004). The vendor calls the event codes "1–97", but the page
// lists only the codes below; the set is open, so a code missing here is
// not an error, just unnamed.

// EventType describes one value of an activity record's
// window_activity.type.
type EventType struct {
	Code        int
	Name        string
	Group       string // the vendor table's heading: Module, Window Hierarchy, UI Elements, HID Activity
	Description string
}

// Event type groups, as headed in the vendor table. The first three codes
// have no heading there; Module is our name for them.
const (
	GroupModule          = "Module"
	GroupWindowHierarchy = "Window Hierarchy"
	GroupUIElements      = "UI Elements" // extended monitoring only
	GroupHIDActivity     = "HID Activity"
)

// EventTypes lists the documented event codes in code order.
var EventTypes = []EventType{
	{1, "Start", GroupModule, "monitoring module startup; normally the user session's start or unlock"},
	{2, "Stop", GroupModule, "monitoring module shutdown; normally the user session's lock or end"},
	{3, "ProcessCrashed", GroupModule, "application crash or termination"},
	{40, "WindowSwitch", GroupWindowHierarchy, "switch between windows, browser tabs or previously opened program windows"},
	{41, "WindowUpdate", GroupWindowHierarchy, "window title change"},
	{42, "WindowOpen", GroupWindowHierarchy, "new window: browser window, browser tab, program tab"},
	{43, "DocumentOpen", GroupWindowHierarchy, "a document was opened"},
	{44, "DocumentSave", GroupWindowHierarchy, "a document was saved under another name"},
	{45, "SheetOpen", GroupWindowHierarchy, "Excel sheet switched, renamed or created"},
	{52, "Invoke", GroupUIElements, "click on a UI element (button, hyperlink, ...) or a hotkey"},
	{53, "FieldEdit", GroupUIElements, "Edit or Document element edited; recorded when focus leaves it, name and value in parameters"},
	{56, "FileSelect", GroupUIElements, "file or folder chosen in the standard open dialog; path in parameters under select_from"},
	{58, "FileSave", GroupUIElements, "file saved through a dialog or downloaded in Chrome; path in parameters under save_to"},
	{60, "Copy", GroupUIElements, "text copied or cut; text in parameters under copy_value"},
	{61, "Paste", GroupUIElements, "text pasted; text in parameters under paste_value"},
	{62, "ValueSelect", GroupUIElements, "value chosen in a combo box, checkbox or radio button"},
	{63, "Respond", GroupUIElements, "the button or hyperlink of an Invoke became invisible"},
	{64, "FormRespond", GroupUIElements, "Respond, when parameter fields in the window were modified"},
	{65, "Select", GroupUIElements, "items selected in a list, table or tree"},
	{90, "InjectedMouseClick", GroupHIDActivity, "software-generated mouse click"},
	{91, "InjectedMouseScroll", GroupHIDActivity, "software-generated mouse scroll"},
	{92, "InjectedKeyboardEvent", GroupHIDActivity, "software-generated key press"},
	{95, "HardwareMouseClick", GroupHIDActivity, "hardware mouse click"},
	{96, "HardwareMouseScroll", GroupHIDActivity, "hardware mouse scroll"},
	{97, "HardwareKeyboardEvent", GroupHIDActivity, "hardware key press"},
}

// ControlElement describes one UI control element code, as used by an
// activity's element type, location types and parameter types.
type ControlElement struct {
	Code int
	// Name is the vendor's value; Aliases are further values the vendor
	// lists for the same code (Splitbutton for Button).
	Name        string
	Aliases     []string
	Description string
}

// ControlElements lists the documented control element codes in code order.
// Only Window and Unknown appear in basic monitoring; the vendor table
// names no code for Unknown.
var ControlElements = []ControlElement{
	{1, "Window", nil, "window"},
	{10, "Button", []string{"Splitbutton"}, "buttons"},
	{12, "CheckBox", nil, "checkbox; also a RadioButton without a radio group"},
	{13, "ComboBox", nil, "combo box; also a RadioButton in a radio group"},
	{14, "Edit", nil, "text field"},
	{15, "Hyperlink", nil, "hyperlink"},
	{17, "ListItem", nil, "list item"},
	{21, "MenuItem", nil, "menu item"},
	{29, "TabItem", nil, "tab"},
	{34, "TreeItem", nil, "tree list item"},
	{39, "DataItem", nil, "table item"},
	{40, "Document", nil, "text field in MS Outlook"},
	{49, "HotKey", nil, "keyboard shortcut"},
	{50, "Location", nil, "parameter type of location fields (save_from, save_to, excel_sheet, ...)"},
	{51, "Clipboard", nil, "parameter type of copy_value and paste_value"},
	{52, "UrlParam", nil, "parameter type of values extracted from URLs"},
	{53, "NameParam", nil, "parameter type of values extracted from window titles or element names"},
	{54, "Id", nil, "parameter type of window id fields"},
	{55, "Message", nil, "parameter type of a confirmation dialog's message"},
	{56, "ExitCode", nil, "parameter type of a process crash's exit_code"},
	{57, "ExcelSheet", nil, "Excel sheet name"},
}

var (
	eventTypeByCode      = map[int]*EventType{}
	controlElementByCode = map[int]*ControlElement{}
)

func init() {
	for i := range EventTypes {
		eventTypeByCode[EventTypes[i].Code] = &EventTypes[i]
	}
	for i := range ControlElements {
		controlElementByCode[ControlElements[i].Code] = &ControlElements[i]
	}
}

// LookupEventType returns the documented event type with the given code.
func LookupEventType(code int) (EventType, bool) {
	e, ok := eventTypeByCode[code]
	if !ok {
		return EventType{}, false
	}
	return *e, true
}

// LookupControlElement returns the documented control element with the
// given code.
func LookupControlElement(code int) (ControlElement, bool) {
	c, ok := controlElementByCode[code]
	if !ok {
		return ControlElement{}, false
	}
	return *c, true
}

// EventTypeName returns the name of an event code, or "" when the code is
// not documented.
func EventTypeName(code int) string {
	if e, ok := eventTypeByCode[code]; ok {
		return e.Name
	}
	return ""
}

// ControlElementName returns the name of a control element code, or ""
// when the code is not documented.
func ControlElementName(code int) string {
	if c, ok := controlElementByCode[code]; ok {
		return c.Name
	}
	return ""
}
