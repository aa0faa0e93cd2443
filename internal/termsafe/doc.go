// Package termsafe makes text from elsewhere (a scheduler's answers, event
// data, error bodies) safe to print on a terminal: control characters,
// escape sequences and Unicode bidi controls are shown escaped, so nothing
// a server sends can move the cursor, retitle the window, clear the screen
// or reorder what a reader sees.
package termsafe
