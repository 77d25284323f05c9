package admin

import (
	"errors"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/countersign/countersign/engine/approval"
	"github.com/countersign/countersign/server/httpd"
	"github.com/countersign/countersign/server/jsonwire"
	"github.com/countersign/countersign/store"
)

// Limits of the user fields, checked before anything is stored so a bad
// value is a 400 naming its field. The mobile number and the e-mail address
// have the store's own (store.NormalizeMobile, store.NormalizeEmail).
const (
	maxNameBytes = 256
)

// Request bodies. Field names are exactly the wire names (sonic is case
// sensitive here); strings refer into the request context's body.

type createUserRequest struct {
	UserID string `json:"userID"`
	Mobile string `json:"mobile"`
	Email  string `json:"email"`
	Name   string `json:"name"`
}

// patchUserRequest has PATCH semantics: an absent field keeps its value,
// "" clears it (null is refused: one spelling for one meaning).
type patchUserRequest struct {
	Mobile *string `json:"mobile"`
	Email  *string `json:"email"`
	Name   *string `json:"name"`
}

// Shapes of the bodies, for the checks before binding.
var (
	shapeCreateUser = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "userID", Shape: jsonwire.ShapeString, Required: true},
		{Name: "mobile", Shape: jsonwire.ShapeString},
		{Name: "email", Shape: jsonwire.ShapeString},
		{Name: "name", Shape: jsonwire.ShapeString},
	}}
	shapePatchUser = &jsonwire.Shape{Kind: jsonwire.KindObject, Desc: "an object", Fields: []jsonwire.FieldShape{
		{Name: "mobile", Shape: jsonwire.ShapeString},
		{Name: "email", Shape: jsonwire.ShapeString},
		{Name: "name", Shape: jsonwire.ShapeString},
	}}
)

const (
	msgUserID = "userID must be 1 to 256 bytes without control characters or '/' (a user is addressed by it in paths)"
	msgName   = "name must be at most 256 bytes without control characters"
	msgLimit  = "limit must be an integer from 1 to 1000"
	msgCursor = "cursor is not one this server handed out (pass the previous page's next)"
)

// validUserID reports whether s can name a user: what the store takes,
// without control characters (it is logged and shown), and without '/',
// so that every user has a path (/admin/v1/users/{userID}).
func validUserID(s string) bool {
	return len(s) > 0 && len(s) <= approval.MaxUserIDLen && printable(s) && strings.IndexByte(s, '/') < 0
}

// printable reports whether s holds no C0 or C1 control character (the
// body is valid UTF-8, checked before binding).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch < 0x20 || ch == 0x7f:
			return false
		case ch == 0xc2 && i+1 < len(s) && s[i+1] <= 0x9f:
			return false
		}
	}
	return true
}

// checkContact answers 400 naming the field unless mobile and email (either
// may be nil: not given, or "": none) are what the store accepts.
func (c *reqCtx) checkContact(mobile, email, name *string) bool {
	if mobile != nil && *mobile != "" {
		if _, err := store.NormalizeMobile("", *mobile); err != nil {
			return c.Failf(httpd.ErrInvalidField, "mobile is not a mobile number in E.164 form (+CC...): ", detail(err, store.ErrMobile))
		}
	}
	if email != nil && *email != "" {
		if _, err := store.NormalizeEmail(*email); err != nil {
			return c.Failf(httpd.ErrInvalidField, "email is not an e-mail address: ", detail(err, store.ErrEmail))
		}
	}
	if name != nil && (len(*name) > maxNameBytes || !printable(*name)) {
		return c.Failf(httpd.ErrInvalidField, msgName)
	}
	return true
}

// detail is what err, a wrapping of sentinel, says beyond the sentinel.
func detail(err, sentinel error) string {
	return strings.TrimPrefix(err.Error(), sentinel.Error()+": ")
}

// createUser answers POST /admin/v1/users.
func (s *Surface) createUser(c *reqCtx) {
	if !c.ReadBody(httpd.LimitSmall) {
		return
	}
	r := &c.createReq
	*r = createUserRequest{}
	if !c.Decode(shapeCreateUser, r) {
		return
	}
	if !validUserID(r.UserID) {
		c.Failf(httpd.ErrInvalidField, msgUserID)
		return
	}
	if !c.checkContact(&r.Mobile, &r.Email, &r.Name) {
		return
	}
	u, err := s.db.CreateUser(c.org.ID, store.User{UserID: r.UserID, Mobile: r.Mobile, Email: r.Email, Name: r.Name})
	if err != nil {
		s.userFailed(c, err)
		return
	}
	c.Status = fasthttp.StatusCreated
	c.Out = appendUser(c.Out[:0], &u, false)
}

// getUser answers GET /admin/v1/users/{userID}.
func (s *Surface) getUser(c *reqCtx, userID string) {
	u, err := s.db.User(c.org.ID, userID)
	if err != nil {
		s.userFailed(c, err)
		return
	}
	s.answerUser(c, &u)
}

// patchUser answers PATCH /admin/v1/users/{userID}: the fields given
// change, the others stay.
func (s *Surface) patchUser(c *reqCtx, userID string) {
	if !c.ReadBody(httpd.LimitSmall) {
		return
	}
	r := &c.patchReq
	*r = patchUserRequest{}
	if !c.Decode(shapePatchUser, r) || !c.checkContact(r.Mobile, r.Email, r.Name) {
		return
	}
	u, err := s.db.UpdateUser(c.org.ID, userID, store.UserPatch{Mobile: r.Mobile, Email: r.Email, Name: r.Name})
	if err != nil {
		s.userFailed(c, err)
		return
	}
	s.answerUser(c, &u)
}

// deleteUser answers DELETE /admin/v1/users/{userID}: 204, the user, its
// devices and its state gone, its pending approvals cancelled.
func (s *Surface) deleteUser(c *reqCtx, userID string) {
	if err := s.db.DeleteUser(c.org.ID, userID); err != nil {
		s.userFailed(c, err)
		return
	}
	c.Status = fasthttp.StatusNoContent
}

// unlockUser answers POST /admin/v1/users/{userID}/unlock: the lock after
// too many failures and the failures behind it go (approval.Unlock); the
// user as it then is.
func (s *Surface) unlockUser(c *reqCtx, userID string) {
	err := s.db.UpdateUserState(c.org.ID, userID, &c.state, func(u *approval.UserState) error {
		approval.Unlock(u)
		return nil
	})
	if err != nil {
		s.userFailed(c, err)
		return
	}
	s.getUser(c, userID)
}

// listUsers answers GET /admin/v1/users?limit=&cursor=: a page of the
// organization's users by id, and the cursor of the next ("" after the
// last).
func (s *Surface) listUsers(c *reqCtx) {
	limit, cursor, ok := c.pageArgs()
	if !ok {
		return
	}
	users, next, err := s.db.ListUsers(c.org.ID, limit, cursor)
	if err != nil {
		c.pageFailed(err)
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = append(c.Out[:0], `{"items":[`...)
	for i := range users {
		locked, ok := s.locked(c, users[i].UserID)
		if !ok {
			return
		}
		if i > 0 {
			c.Out = append(c.Out, ',')
		}
		c.Out = appendUser(c.Out, &users[i], locked)
	}
	c.Out = append(c.Out, `],"next":`...)
	c.Out = jsonwire.AppendString(c.Out, next)
	c.Out = append(c.Out, '}')
}

// answerUser answers 200 with u and whether it is locked now.
func (s *Surface) answerUser(c *reqCtx, u *store.User) {
	locked, ok := s.locked(c, u.UserID)
	if !ok {
		return
	}
	c.Status = fasthttp.StatusOK
	c.Out = appendUser(c.Out[:0], u, locked)
}

// locked reads whether the user is locked now; false after answering a
// store failure. A user deleted since it was read is not locked.
func (s *Surface) locked(c *reqCtx, userID string) (locked, ok bool) {
	err := s.db.UserState(c.org.ID, userID, &c.state)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, true
	case err != nil:
		return false, c.StoreFailed(err)
	}
	_, locked = c.state.LockedAt(s.now())
	return locked, true
}

// userFailed answers a store error of a user operation.
func (s *Surface) userFailed(c *reqCtx, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.Fail(errUserNotFound, nil)
	case errors.Is(err, store.ErrExists):
		c.Fail(errUserExists, nil)
	case errors.Is(err, store.ErrMobileTaken):
		c.Fail(errMobileTaken, nil)
	case errors.Is(err, store.ErrEmailTaken):
		c.Fail(errEmailTaken, nil)
	case errors.Is(err, store.ErrMobile), errors.Is(err, store.ErrEmail), errors.Is(err, store.ErrUserID),
		errors.Is(err, store.ErrTooLarge):
		// The checks above refuse these first; the store's word, should
		// they ever disagree, is still a bad request, not a failure.
		c.Failf(httpd.ErrInvalidField, strings.TrimPrefix(err.Error(), "store: "))
	default:
		c.StoreFailed(err)
	}
}

// appendUser appends the user's JSON:
// {"userID","mobile","email","name","createdAt","locked","devices"}.
func appendUser(dst []byte, u *store.User, locked bool) []byte {
	dst = append(dst, `{"userID":`...)
	dst = jsonwire.AppendString(dst, u.UserID)
	dst = append(dst, `,"mobile":`...)
	dst = jsonwire.AppendString(dst, u.Mobile)
	dst = append(dst, `,"email":`...)
	dst = jsonwire.AppendString(dst, u.Email)
	dst = append(dst, `,"name":`...)
	dst = jsonwire.AppendString(dst, u.Name)
	dst = append(dst, `,"createdAt":`...)
	dst = strconv.AppendInt(dst, u.CreatedAt, 10)
	dst = append(dst, `,"locked":`...)
	dst = jsonwire.AppendBool(dst, locked)
	dst = append(dst, `,"devices":`...)
	dst = strconv.AppendInt(dst, int64(u.Devices), 10)
	return append(dst, '}')
}
