// Package scripttest runs scripted tests: files in testdata where each block
// is a command, optional input lines, a ---- line and the output the command
// must produce, in the style of cockroachdb/datadriven. A test walks a
// folder with Walk, runs each file with RunFile and a handler that executes
// one Cmd and returns its output; with -rewrite (registered here, so every
// package importing scripttest accepts it) the expected outputs are replaced
// in place and the rest of each file is kept byte for byte. It is imported
// by test code only.
//
// The format:
//
//	# comments and blank lines between blocks are skipped
//	name pos key=value key="quoted value" {"json": "to the end of the line"}
//	input lines (optional; may hold blank and # lines)
//	----
//	expected output, up to a blank line or the end of the file
//
// An output that holds blank lines is framed by two ---- lines on each side:
//
//	name
//	----
//	----
//	output
//
//	with a blank line
//	----
//	----
package scripttest
