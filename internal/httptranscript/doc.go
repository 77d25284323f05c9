// Package httptranscript runs HTTP transcripts: datadriven files that state
// an API surface's contract as the requests a client sends and the exact
// answers it gets, run against a real server over a real TCP socket and
// read back with net/http's parser. Every surface's tests use it, so that
// the native, iVALT-compatible and UNLOQ-compatible contracts read alike.
//
// # The file format
//
// A file is a sequence of datadriven cases (command line, input, "----",
// output); -rewrite regenerates the outputs. Lines starting with # between
// cases are comments.
//
// request (or http) sends the input as an HTTP/1.1 request: a request line,
// header lines, a blank line and the body. Line endings of the request line
// and headers become CRLF; "Host: countersign.test" is added when the
// request has no Host header; Content-Length is computed unless the text
// gives one or gives Transfer-Encoding (then the text frames the body itself
// and its line endings become CRLF too). Arguments:
//
//	gzip, zstd         compress the body (and add Content-Encoding unless given)
//	chunked            send the body as one chunk with Transfer-Encoding: chunked
//	bytes              \xNN in the body is that byte (JSON text never has \x)
//	headers=(A, B)     show these answer headers too
//	mask=(f, g)        mask these JSON fields of the answer too
//	capture=(v=f, g)   set $v to the answer's JSON field f (a dotted path), $g to field g
//	async=NAME         send it and go on at once; a later "await NAME" shows the answer
//	                   (a held request, answered when a later case decides it)
//	chunks             show the body chunk by chunk as sent, one Go-quoted chunk a line
//	                   (a stream of events); capture reads the chunks' concatenation
//
// raw sends the input's bytes exactly as written, for requests a client
// library would refuse to write: nothing is added, the file's line breaks
// are not sent (so that a case shows where each line ends: write \r\n), and
// every backslash is an escape: \r, \n, \t, \0, \\ and \xNN. It takes
// headers, mask and capture as request does.
//
// let NAME [times=N] [from=K] [sep=S] sets $NAME to the input repeated N
// times (default 1) joined by S, with $i the repetition's number counted
// from K: long or repetitive bodies stay readable.
//
// In the input of every command, $name and ${name} are replaced by the
// variable's value ($$ is a dollar sign); an unset variable fails the case.
// Variables come from the test (credentials, ids), from capture and from
// let.
//
// The output of request and raw is the answer: the status line as sent, the
// headers that matter (DefaultHeaders, Connection only when it says close,
// then Runner.Show and headers=), a blank line and the body's exact bytes.
// A compressed body is shown decompressed and its Content-Encoding line says
// so. Volatile values are masked: each field named in Runner.Mask or mask=
// has its value replaced by a placeholder numbered by first appearance in
// the file ("<decisionID-1>"), and a value of a test or captured variable
// reads as $name. When the server closes without answering, the output says
// so in one parenthesised line.
package httptranscript
