package server

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/countersign/countersign/server/httpd"
)

// loadOpenAPIDocument parses and validates the embedded document the way the
// conformance tests use it.
func loadOpenAPIDocument(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPIDocument())
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate openapi.json: %v", err)
	}
	return doc
}

func TestOpenAPIDocLoads(t *testing.T) {
	doc := loadOpenAPIDocument(t)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
}

// TestOpenAPIDocRoutes keeps the document in step with the routes DESIGN lists:
// every route, and every status each route can answer.
func TestOpenAPIDocRoutes(t *testing.T) {
	doc := loadOpenAPIDocument(t)
	validate := []string{"200", "202", "400", "401", "404", "410", "413", "415", "422", "429", "503"}
	want := []struct {
		method, path string
		statuses     []string
	}{
		{"POST", "/v1/sessions", []string{"201", "400", "401", "409", "413", "415", "429", "503"}},
		{"POST", "/v1/sessions/{csid}/events", []string{"202", "400", "401", "404", "410", "413", "415", "429", "503"}},
		{"GET", "/v1/sessions/{csid}", []string{"200", "401", "404", "410"}},
		{"POST", "/v1/validate", validate},
		{"POST", "/api/v1/validate", validate},
		{"GET", "/v1/decisions/{decisionID}", []string{"200", "401", "404"}},
		{"POST", "/v1/approvals", []string{"201", "400", "401", "403", "404", "413", "415", "423", "429", "503"}},
		{"GET", "/v1/approvals/{approvalID}", []string{"200", "400", "401", "404", "503"}},
		{"POST", "/v1/approvals/{approvalID}/cancel", []string{"200", "401", "404", "409", "503"}},
		{"POST", "/v1/approvals/{approvalID}/otp", []string{"200", "400", "401", "404", "409", "413", "415", "423", "503"}},
		{"POST", "/v1/device/activate", []string{"201", "400", "404", "410", "413", "415", "503"}},
		{"GET", "/v1/device/approvals", []string{"200", "400", "401", "503"}},
		{"POST", "/v1/device/approvals/{approvalID}", []string{"200", "400", "401", "404", "409", "410", "413", "415", "422", "423", "503"}},
		{"GET", "/healthz", []string{"200"}},
		{"GET", "/readyz", []string{"200", "503"}},
		{"GET", "/metrics", []string{"200"}},
		{"GET", "/openapi.json", []string{"200"}},
		{"POST", "/admin/v1/users", []string{"201", "400", "401", "409", "413", "415", "429", "503"}},
		{"GET", "/admin/v1/users", []string{"200", "400", "401", "503"}},
		{"GET", "/admin/v1/users/{userID}", []string{"200", "401", "404", "503"}},
		{"PATCH", "/admin/v1/users/{userID}", []string{"200", "400", "401", "404", "409", "413", "415", "503"}},
		{"DELETE", "/admin/v1/users/{userID}", []string{"204", "401", "404", "503"}},
		{"POST", "/admin/v1/users/{userID}/unlock", []string{"200", "401", "404", "503"}},
		{"POST", "/admin/v1/users/{userID}/activation-codes", []string{"201", "401", "404", "503"}},
		{"GET", "/admin/v1/users/{userID}/devices", []string{"200", "401", "404", "503"}},
		{"DELETE", "/admin/v1/devices/{deviceID}", []string{"204", "401", "404", "503"}},
		{"POST", "/admin/v1/webhooks", []string{"201", "400", "401", "409", "413", "415", "429", "503"}},
		{"GET", "/admin/v1/webhooks", []string{"200", "400", "401", "503"}},
		{"GET", "/admin/v1/webhooks/{id}", []string{"200", "401", "404", "503"}},
		{"DELETE", "/admin/v1/webhooks/{id}", []string{"204", "401", "404", "503"}},
		{"GET", "/admin/v1/webhooks/{id}/deliveries", []string{"200", "400", "401", "404", "503"}},
		{"POST", "/unloq/v1/authenticate", []string{"200", "400", "401", "403", "404", "409", "413", "415", "423", "429", "503"}},
		{"POST", "/unloq/v1/token", []string{"200", "400", "401", "404", "413", "415", "503"}},
		{"POST", "/unloq/v1/token/session", []string{"200", "400", "401", "404", "409", "413", "415", "503"}},
		{"GET", "/unloq/v1/approvals", []string{"200", "400", "401", "404", "503"}},
		{"GET", "/unloq/v1/approvals/{id}", []string{"200", "401", "404", "503"}},
		{"GET", "/admin/v1/rules", []string{"200", "401", "503"}},
		{"PUT", "/admin/v1/rules", []string{"200", "400", "401", "413", "415", "503"}},
		{"GET", "/admin/v1/settings", []string{"200", "401", "503"}},
		{"PUT", "/admin/v1/settings", []string{"200", "400", "401", "413", "415", "503"}},
		{"GET", "/admin/v1/policy", []string{"200", "401", "503"}},
		{"PUT", "/admin/v1/policy", []string{"200", "400", "401", "413", "415", "503"}},
		{"POST", "/admin/v1/keys", []string{"201", "400", "401", "413", "415", "503"}},
		{"GET", "/admin/v1/keys", []string{"200", "401", "503"}},
		{"DELETE", "/admin/v1/keys/{keyID}", []string{"204", "401", "404", "409", "503"}},
		{"GET", "/admin/v1/client-certs", []string{"200", "401", "503"}},
		{"PUT", "/admin/v1/client-certs", []string{"200", "400", "401", "409", "413", "415", "503"}},
		{"GET", "/admin/v1/approvals", []string{"200", "400", "401", "503"}},
		{"GET", "/admin/v1/approvals/{approvalID}", []string{"200", "401", "404", "503"}},
		{"GET", "/admin/v1/decisions", []string{"200", "400", "401", "503"}},
		{"POST", "/ivalt/biometric-auth-request", []string{"200", "400", "401", "403", "404", "423", "429"}},
		{"POST", "/ivalt/biometric-auth-result", []string{"200", "400", "401", "403", "404", "422"}},
		{"POST", "/ivalt/biometric-geo-fence-auth-results", []string{"200", "400", "401", "403", "404", "422"}},
		{"POST", "/ivalt/get-user-by-email", []string{"200", "400", "401", "403", "404"}},
		{"POST", "/ivalt/admin/public/api/generate-auth-token", []string{"200", "400", "401", "403"}},
		{"POST", "/ivalt/admin/public/api/api/v1/auth", []string{"200", "400", "401", "403"}},
		{"POST", "/ivalt/admin/public/api/verify-user", []string{"200", "400", "401", "403", "404", "423", "429"}},
		{"POST", "/ivalt/admin/public/api/biometric-geo-fence-auth-results", []string{"200", "400", "401", "403", "404", "422"}},
		{"POST", "/ivalt/admin/public/api/validate/person", []string{"200", "400", "401", "403", "404"}},
		{"POST", "/ivalt/admin/public/api/validate/global/rest/auth", []string{"200", "400", "401", "403", "404", "422"}},
		{"POST", "/ivalt/admin/public/api/api/v1/validate/user", []string{"200", "400", "401", "403", "404"}},
		{"POST", "/ivalt/admin/public/api/get-user-by-email", []string{"200", "400", "401", "403", "404"}},
		{"GET", "/unloq/v1/link/{org}/{token}", []string{"200", "404", "503"}},
		{"POST", "/unloq/v1/link/{org}/{token}", []string{"200", "404", "423", "503"}},
	}
	paths := map[string]bool{}
	for _, w := range want {
		paths[w.path] = true
	}
	if got := doc.Paths.Len(); got != len(paths) {
		t.Errorf("document has %d paths, want %d", got, len(paths))
	}
	for _, w := range want {
		item := doc.Paths.Value(w.path)
		if item == nil {
			t.Errorf("%s %s: missing", w.method, w.path)
			continue
		}
		op := item.GetOperation(w.method)
		if op == nil {
			t.Errorf("%s %s: no operation", w.method, w.path)
			continue
		}
		// Any route can answer these: a wrong method, a slow or oversized
		// request head, a handler panic.
		for _, s := range append(w.statuses, "405", "408", "431", "500") {
			if op.Responses.Value(s) == nil {
				t.Errorf("%s %s: no %s response", w.method, w.path, s)
			}
		}
		for s := range op.Responses.Map() {
			if !slices.Contains(w.statuses, s) && s[0] != '4' && s[0] != '5' {
				t.Errorf("%s %s: undocumented success status %s", w.method, w.path, s)
			}
		}
	}
}

// TestOpenAPIDocSchemas checks the schemas against DESIGN's documented example
// and against drift: the validate response is strict, so an extra or a
// missing indicator fails.
func TestOpenAPIDocSchemas(t *testing.T) {
	doc := loadOpenAPIDocument(t)
	schema := func(name string) *openapi3.Schema {
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Fatalf("schema %s missing", name)
		}
		return ref.Value
	}
	cases := []struct {
		schema string
		body   string
		ok     bool
	}{
		{"ValidateResponse", docTestDesignAnswer, true},
		{"ValidateResponse", `{"success":true,"verifiedAction":false,"decisionID":"d","ivScore":2000}`, false},
		{"ValidateResponse", docTestDesignAnswer[:len(docTestDesignAnswer)-1] + `,"extra":1}`, false},
		{"Error", `{"success":false,"errorMessage":"csid is required","errorCode":"missing_field"}`, true},
		{"Error", `{"success":false,"errorMessage":"x","errorCode":"Bad Code"}`, false},
		{"Error", `{"success":true,"errorMessage":"x","errorCode":"x"}`, false},
		{"Processing", `{"errorMessage":"processing","retryAfterMS":10}`, true},
		{"Processing", `{"errorMessage":"processing","retryAfterMS":5}`, false},
		{"CreateSessionRequest", `{"csid":"cs-00000001","userID":"u1","action":"transfer"}`, true},
		{"CreateSessionRequest", `{"csid":"short","userID":"u1","action":"transfer"}`, false},
		{"CreateSessionRequest", `{"csid":"cs-00000001","userID":"u1"}`, true}, // action is optional
		{"CreateSessionResponse", `{"csid":"cs-00000001","collectToken":"t","expiresAt":1763800000000}`, true},
		{"EventsRequest", docTestDesignEvents, true},
		{"EventsRequest", `{"fields":[{"key":"total","value":{"a":1}}]}`, false},
		// Every docType the server accepts (biometric.ParseDocType).
		{"EventsRequest", `{"frames":[{"seq":1,"ts":1763800000100,"type":"document","docType":"other","embedding":"AAAAAA=="}]}`, true},
		{"EventsRequest", `{"frames":[{"seq":1,"ts":1763800000100,"type":"document","docType":"visa","embedding":"AAAAAA=="}]}`, false},
		{"EventsRequest", `{"frames":[{"seq":1,"ts":1763800000,"type":"face","embedding":"AAAAAA=="}]}`, false}, // ts in seconds
		{"EventsRequest", `{"fields":[{"key":"total","value":1,"ts":-1}]}`, false},
		{"EventsResponse", `{"accepted":{"fields":1,"frames":2},"pending":2}`, true},
		{"ValidateRequest", docTestSeedValidate, true},
		{"ValidateRequest", `{"cid":"c","csid":"cs-00000001","userID":"u","action":"a","extra":1}`, false},
		{"ValidateRequest", `{"cid":"c","csid":"cs-00000001","userID":"u"}`, true}, // action is optional
	}
	for i, c := range cases {
		var v any
		if err := json.Unmarshal([]byte(c.body), &v); err != nil {
			t.Fatalf("case %d: bad JSON: %v", i, err)
		}
		err := schema(c.schema).VisitJSON(v, openapi3.EnableJSONSchema2020())
		if (err == nil) != c.ok {
			t.Errorf("case %d %s: err = %v, want ok=%v", i, c.schema, err, c.ok)
		}
	}
}

const docTestDesignAnswer = `{"success":true,"verifiedAction":false,"decisionID":"01JBZ8Q3Y0000000000000000",
 "indicators":{"iv_is_values_collected":true,"iv_is_values_match":true,
  "iv_values_match_details":{"amount":{"matched":true,"field":"total","reason":"match"},"memo":{"matched":false,"field":null,"reason":"not_collected"}},
  "iv_is_biometrics_collected":false,"iv_is_biometrics_match":false,"iv_liveness":false,
  "iv_policy_violations":{"violations":[],"has_violations":false,"total_frames":0,"verified_frames":0},
  "iv_biometrics_info":[],"iv_user_enrolled":false,"iv_spoof_detected":false,
  "idv_matching":false,"driverLicenseCollected":false,"idlive_liveness":false,"regular_liveness":false},
 "ivScore":2000}`

const docTestDesignEvents = `{"fields":[{"key":"total","value":"35.00","ts":1763800000000}],
 "frames":[{"seq":1,"ts":1763800000100,"type":"face","faces":1,"quality":0.93,"liveness":0.97,"embedding":"AAAAAA=="},
           {"seq":2,"ts":1763800000900,"type":"document","docType":"driver_license","quality":0.9,"liveness":0.95,"embedding":"AAAAAA=="}],
 "final":false}`

const docTestSeedValidate = `{"cid":"CID","csid":"cs-00000001","userID":"u1","action":"transfer","additionalData":{"sessionData":[{"key":"amount","value":35,"synonyms":["total","sum"]},{"key":"payeeID","value":6,"synonyms":["payee"]},{"key":"accountNumber","value":"66666666","synonyms":["account"]},{"key":"notes","value":"Wire transfer","synonyms":["memo"]}]},"isEnrollment":false}`

// TestOpenAPIDocErrorCatalog keeps the document's list of error codes equal
// to the server's catalog, so a new code cannot go undocumented.
func TestOpenAPIDocErrorCatalog(t *testing.T) {
	doc := loadOpenAPIDocument(t)
	var inDoc, inCode []string
	for _, e := range doc.Components.Schemas["Error"].Value.Properties["errorCode"].Value.Enum {
		inDoc = append(inDoc, e.(string))
	}
	for _, e := range httpd.Catalog() {
		inCode = append(inCode, e.Code)
	}
	slices.Sort(inDoc)
	slices.Sort(inCode)
	if !slices.Equal(inDoc, inCode) {
		t.Fatalf("openapi.json error codes\n %v\nserver catalog\n %v", inDoc, inCode)
	}
}
