package server

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/rules"
)

// The README's worked signature example: fixed inputs, from which the
// engine computes the rest. The seed is RFC 8032's first Ed25519 test key,
// so an implementer can check their library's key derivation too.
const (
	readmeSeed      = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	readmeID        = "apr_k3vq7nz2hx4mbt6wpe5dsr2a"
	readmeTimestamp = "2026-12-03T16:20:00Z"
)

var readmeValues = []approval.Value{{Key: "amount", Value: "35.00"}, {Key: "payee", Value: "NL91ABNA0417164300"}}

// readmeSignatureExample is the README's example as the code computes it:
// the inputs, the bytes the values digest is taken over, the digest, the
// signed bytes and the signature.
func readmeSignatureExample(t *testing.T) string {
	t.Helper()
	seed, err := hex.DecodeString(readmeSeed)
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	var challenge [approval.ChallengeSize]byte
	for i := range challenge {
		challenge[i] = byte(i)
	}
	digest := approval.ValuesDigest(readmeValues)
	signed := approval.AppendSignedBytes(nil, readmeID, &challenge, approval.DecisionApprove, rules.BiometricPass, readmeTimestamp, &digest)
	sig := ed25519.Sign(key, signed)

	var hashed, shown strings.Builder
	n := 0
	for i, v := range readmeValues {
		if i > 0 {
			hashed.WriteString(", ")
		}
		fmt.Fprintf(&hashed, "`%s`, 0x00, `%s`, 0x00", v.Key, v.Value)
		n += len(v.Key) + len(v.Value) + 2
		if i > 0 {
			shown.WriteString(", ")
		}
		fmt.Fprintf(&shown, `{"key":%q,"value":%q}`, v.Key, v.Value)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "```text\n")
	fmt.Fprintf(&b, "seed (hex)   %s\n", readmeSeed)
	fmt.Fprintf(&b, "publicKey    %s\n", base64.RawURLEncoding.EncodeToString(key.Public().(ed25519.PublicKey)))
	fmt.Fprintf(&b, "approvalID   %s\n", readmeID)
	fmt.Fprintf(&b, "challenge    %s\n", base64.RawURLEncoding.EncodeToString(challenge[:]))
	fmt.Fprintf(&b, "values       [%s]\n", shown.String())
	fmt.Fprintf(&b, "decision     %s\n", approval.DecisionApprove)
	fmt.Fprintf(&b, "biometric    %s\n", rules.BiometricPass)
	fmt.Fprintf(&b, "timestamp    %s\n", readmeTimestamp)
	fmt.Fprintf(&b, "```\n\n")
	fmt.Fprintf(&b, "The values digest is the SHA-256 of these %d bytes: %s:\n\n", n, hashed.String())
	fmt.Fprintf(&b, "```text\n%x\n```\n\n", digest)
	fmt.Fprintf(&b, "The signed bytes are these %d bytes of UTF-8, the lines joined by `\\n`, with no final newline:\n\n", len(signed))
	fmt.Fprintf(&b, "```text\n%s\n```\n\n", signed)
	fmt.Fprintf(&b, "and the answer's `signature` is their Ed25519 signature in base64url without padding:\n\n")
	fmt.Fprintf(&b, "```text\n%s\n```\n", base64.RawURLEncoding.EncodeToString(sig))
	return b.String()
}

// TestReadmeSignatureExample keeps the README's worked example of the
// device's signature equal to what the engine computes and verifies: a
// client implementer checks their code against those numbers, so a wrong
// digit there would send them chasing a bug they do not have.
func TestReadmeSignatureExample(t *testing.T) {
	want := readmeSignatureExample(t)
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), want) {
		t.Fatalf("README.md lacks the signature example as the code computes it:\n\n%s", want)
	}

	// The signature verifies as the device surface checks answers: the
	// example is an answer the server accepts, not only bytes that agree.
	seed, _ := hex.DecodeString(readmeSeed)
	key := ed25519.NewKeyFromSeed(seed)
	now, _ := time.Parse(time.RFC3339, readmeTimestamp)
	s := approval.DefaultSettings()
	var a approval.Approval
	rq := approval.Request{ID: readmeID, UserID: "user-1", Message: "Pay 35.00 EUR to NL91ABNA0417164300?", Values: readmeValues,
		Method: approval.MethodPush}
	if err := approval.New(&a, &rq, &s, now, zeroToThirtyOne{}); err != nil {
		t.Fatal(err)
	}
	sigLine := want[strings.LastIndex(want, "```text\n")+len("```text\n"):]
	ans := approval.DeviceAnswer{Decision: approval.DecisionApprove, Biometric: rules.BiometricPass,
		Timestamp: readmeTimestamp, Signature: strings.TrimSuffix(sigLine, "\n```\n")}
	var res rules.Result
	rules.Evaluate(nil, &rules.Input{UserID: []byte(a.UserID), Biometric: rules.BiometricPass}, now, &res)
	dev := approval.Device{ID: "dev_example", UserID: a.UserID, PublicKey: key.Public().(ed25519.PublicKey)}
	var u approval.UserState
	eff, err := approval.Answer(&a, &u, &s, &dev, &ans, &res, now)
	if err != nil || eff.Status != approval.StatusApproved {
		t.Fatalf("the example's answer: %+v, %v; want approved", eff, err)
	}
}

// zeroToThirtyOne reads 0, 1, 2, ...: the example's challenge is bytes 0 to 31.
type zeroToThirtyOne struct{}

func (zeroToThirtyOne) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}
