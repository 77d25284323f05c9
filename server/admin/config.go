package admin

import (
	"cmp"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/engine/policy"
	"github.com/countersign/countersign/engine/rules"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/server/tenant"
	"github.com/countersign/countersign/store"
)

// limitDocument bounds a rules, settings or policy document: a rule set at
// its limits of fences and polygon vertices fits, and nothing an operator
// writes by hand comes near it.
const limitDocument = 1 << 20

// The organization's configuration documents: GET answers the stored
// document canonically, with its version in ETag; PUT validates a whole
// document, every field, and answers {"version"}.

// getRules answers GET /admin/v1/rules.
func (s *Surface) getRules(c *reqCtx) {
	d, ok := s.document(c, store.DocRules)
	if !ok {
		return
	}
	js := d.JSON
	if d.Version == 0 {
		js, _ = (&rules.Rules{}).JSON() // the empty set always renders
	}
	c.answerDocument(d.Version, js)
}

// putRules answers PUT /admin/v1/rules.
func (s *Surface) putRules(c *reqCtx) {
	if !c.ReadBody(limitDocument) || !c.CheckSyntax() {
		return
	}
	r, err := rules.Parse(c.Body)
	if err != nil {
		c.Failf(httpd.ErrInvalidField, "The rules document is invalid: ", strings.TrimPrefix(err.Error(), "rules: "))
		return
	}
	js, err := r.JSON()
	if err != nil {
		c.Failf(httpd.ErrInvalidField, "The rules document is invalid: ", strings.TrimPrefix(err.Error(), "rules: "))
		return
	}
	s.putDocument(c, store.DocRules, js)
}

// getSettings answers GET /admin/v1/settings.
func (s *Surface) getSettings(c *reqCtx) {
	d, ok := s.document(c, store.DocSettings)
	if !ok {
		return
	}
	js := d.JSON
	if d.Version == 0 {
		doc := approval.DefaultSettingsDocument()
		js = doc.AppendJSON(nil)
	}
	c.answerDocument(d.Version, js)
}

// putSettings answers PUT /admin/v1/settings.
func (s *Surface) putSettings(c *reqCtx) {
	if !c.ReadBody(limitDocument) || !c.CheckSyntax() {
		return
	}
	doc, err := approval.ParseSettingsDocument(c.Body)
	if err != nil {
		c.Failf(httpd.ErrInvalidField, "The settings document is invalid: ", strings.TrimPrefix(err.Error(), "approval: "))
		return
	}
	s.putDocument(c, store.DocSettings, doc.AppendJSON(nil))
}

func (s *Surface) document(c *reqCtx, kind store.DocKind) (store.OrgDoc, bool) {
	d, err := s.db.OrgDocument(c.org.ID, kind)
	if err != nil {
		return d, c.StoreFailed(err)
	}
	return d, true
}

func (s *Surface) putDocument(c *reqCtx, kind store.DocKind, js []byte) {
	v, err := s.db.PutOrgDocument(c.org.ID, kind, js)
	if err != nil {
		c.StoreFailed(err)
		return
	}
	c.answerVersion(v)
}

// answerDocument answers 200 with a document and its version in ETag (a
// PUT of the same body is then the same document).
func (c *reqCtx) answerDocument(version uint64, js []byte) {
	c.Status = fasthttp.StatusOK
	c.RC.Response.Header.Set(fasthttp.HeaderETag, `"`+strconv.FormatUint(version, 10)+`"`)
	c.Out = append(c.Out[:0], js...)
}

func (c *reqCtx) answerVersion(v uint64) {
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"version":`...)
	c.Out = strconv.AppendUint(c.Out, v, 10)
	c.Out = append(c.Out, '}')
}

// getPolicy answers GET /admin/v1/policy: the validate policy, every key
// present (the defaults when the organization never set one).
func (s *Surface) getPolicy(c *reqCtx) {
	p := policy.Default()
	if len(c.org.Policy) > 0 {
		var err error
		if p, err = policy.Parse(c.org.Policy); err != nil {
			c.StoreFailed(err)
			return
		}
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], p.JSON()...)
}

// putPolicy answers PUT /admin/v1/policy with the policy as stored, in the
// format of countersign org create --policy; it is in force from the next
// validate on.
func (s *Surface) putPolicy(c *reqCtx) {
	if !c.ReadBody(limitDocument) || !c.CheckSyntax() {
		return
	}
	p, err := policy.Parse(c.Body)
	if err != nil {
		c.Failf(httpd.ErrInvalidField, "The policy is invalid: ", strings.TrimPrefix(err.Error(), "policy: "))
		return
	}
	js := p.JSON()
	if err := s.db.SetOrgPolicy(c.org.ID, js); err != nil {
		c.StoreFailed(err)
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], js...)
}

// API keys.

type createKeyRequest struct {
	Name  string `json:"name"`
	Scope string `json:"scope"`
}

var shapeCreateKey = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
	{Name: "name", Shape: jsonwire.ShapeString, Required: true},
	{Name: "scope", Shape: jsonwire.ShapeString, Required: true},
}}

// createKey answers POST /admin/v1/keys: 201 {"id","key","scope","name"},
// the key shown this once (the store keeps its SHA-256).
func (s *Surface) createKey(c *reqCtx) {
	if !c.ReadBody(httpd.LimitSmall) {
		return
	}
	var r createKeyRequest
	if !c.Decode(shapeCreateKey, &r) {
		return
	}
	var scope store.Scope
	switch r.Scope {
	case "backend":
		scope = store.ScopeBackend
	case "admin":
		scope = store.ScopeAdmin
	default:
		c.Failf(httpd.ErrInvalidField, `scope must be "backend" or "admin"`)
		return
	}
	if len(r.Name) == 0 || len(r.Name) > store.MaxAPIKeyName || !printable(r.Name) {
		c.Failf(httpd.ErrInvalidField, "name must be 1 to 128 bytes without control characters")
		return
	}
	key, info, err := s.db.CreateAPIKey(c.org.ID, scope, r.Name)
	if err != nil {
		c.StoreFailed(err)
		return
	}
	c.Status = fasthttp.StatusCreated
	c.Out = append(c.Out[:0], `{"id":`...)
	c.Out = jsonwire.AppendString(c.Out, info.ID)
	c.Out = append(c.Out, `,"key":`...)
	c.Out = jsonwire.AppendString(c.Out, key)
	c.Out = append(c.Out, `,"scope":"`...)
	c.Out = append(c.Out, info.Scope.String()...)
	c.Out = append(c.Out, `","name":`...)
	c.Out = jsonwire.AppendString(c.Out, info.Name)
	c.Out = append(c.Out, '}')
}

// listKeys answers GET /admin/v1/keys: every listed key of the
// organization, never the key itself, oldest first (then by name and id),
// as a page that is always the last (an organization has a handful).
func (s *Surface) listKeys(c *reqCtx) {
	keys, err := s.db.APIKeys(c.org.ID)
	if err != nil {
		c.StoreFailed(err)
		return
	}
	slices.SortFunc(keys, func(a, b store.APIKeyInfo) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), strings.Compare(a.Name, b.Name), strings.Compare(a.ID, b.ID))
	})
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"items":[`...)
	for i := range keys {
		k := &keys[i]
		if i > 0 {
			c.Out = append(c.Out, ',')
		}
		c.Out = append(c.Out, `{"id":`...)
		c.Out = jsonwire.AppendString(c.Out, k.ID)
		c.Out = append(c.Out, `,"prefix":`...)
		c.Out = jsonwire.AppendString(c.Out, k.Prefix)
		c.Out = append(c.Out, `,"name":`...)
		c.Out = jsonwire.AppendString(c.Out, k.Name)
		c.Out = append(c.Out, `,"scope":"`...)
		c.Out = append(c.Out, k.Scope.String()...)
		c.Out = append(c.Out, `","createdAt":`...)
		c.Out = strconv.AppendInt(c.Out, k.CreatedAt, 10)
		c.Out = append(c.Out, '}')
	}
	c.Out = append(c.Out, `],"next":""}`...)
}

// revokeKey answers DELETE /admin/v1/keys/{id}: 204, the key refused from
// the next request on. The key the request is made with is not revoked
// (409): an operator would lock themselves out mid-change.
func (s *Surface) revokeKey(c *reqCtx, id string) {
	if id == store.APIKeyIDOf(c.key) {
		c.Fail(errKeyInUse, nil)
		return
	}
	if err := s.db.RevokeAPIKey(c.org.ID, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			c.Fail(errKeyNotFound, nil)
			return
		}
		c.StoreFailed(err)
		return
	}
	c.Status = fasthttp.StatusNoContent
}

// Client-certificate bindings.

type certsRequest struct {
	SPKISHA256 []string `json:"spkiSHA256"`
}

var shapeCerts = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
	{Name: "spkiSHA256", Required: true, Shape: &jsonwire.Shape{Kind: jsonwire.KindArray, Elem: jsonwire.ShapeString,
		MaxItems: store.MaxCertBindings, Desc: "an array of hex SHA-256 digests"}},
}}

// getCerts answers GET /admin/v1/client-certs.
func (s *Surface) getCerts(c *reqCtx) {
	c.answerCerts(c.org.CertFingerprints)
}

// putCerts answers PUT /admin/v1/client-certs {"spkiSHA256":[...]}: the
// organization's keys are then accepted only over TLS with one of these
// client certificates (none: over anything). A set that would refuse the
// connection making the change is refused (409), so an operator cannot
// lock themselves out.
func (s *Surface) putCerts(c *reqCtx) {
	if !c.ReadBody(httpd.LimitValidate) {
		return
	}
	var r certsRequest
	if !c.Decode(shapeCerts, &r) {
		return
	}
	fps := make([][32]byte, len(r.SPKISHA256))
	for i, h := range r.SPKISHA256 {
		path := "spkiSHA256[" + strconv.Itoa(i) + "]"
		if n, err := hex.Decode(fps[i][:], []byte(h)); err != nil || n != 32 || len(h) != 64 {
			c.Failf(httpd.ErrInvalidField, path, " must be the 64 hex digits of a SHA-256 of a certificate's SubjectPublicKeyInfo")
			return
		}
		for j := range i {
			if fps[j] == fps[i] {
				c.Failf(httpd.ErrInvalidField, path, " repeats spkiSHA256[", strconv.Itoa(j), "]")
				return
			}
		}
	}
	if !tenant.CertBound(c.tlsState(), fps) {
		c.Fail(errCertLockout, nil)
		return
	}
	if err := s.db.SetCertBindings(c.org.ID, fps); err != nil {
		c.StoreFailed(err)
		return
	}
	c.answerCerts(fps)
}

func (c *reqCtx) answerCerts(fps [][32]byte) {
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"spkiSHA256":[`...)
	for i := range fps {
		if i > 0 {
			c.Out = append(c.Out, ',')
		}
		c.Out = append(c.Out, '"')
		c.Out = hex.AppendEncode(c.Out, fps[i][:])
		c.Out = append(c.Out, '"')
	}
	c.Out = append(c.Out, "]}"...)
}
