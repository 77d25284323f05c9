// Package bench is countersign's load harness: closed and open loops over
// one connection per worker, HDR histograms of latency measured from each
// request's intended send time, a fasthttp ceiling answering the bytes of a
// real decision, the server's CPU and memory from /proc, and reports as
// JSON, Markdown and SVG.
//
// It reaches countersign only over HTTP: the sessions it loads are seeded
// through package client by package simulate's client-SDK scenarios, and the
// load itself is raw fasthttp requests built once per worker, so the
// generator costs as little as possible per request. It imports no server,
// store or engine package.
package bench
