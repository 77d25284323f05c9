package main

import (
	"strings"
	"testing"

	"github.com/countersign/countersign/client"
)

// TestServeAdminKey: the admin key init prints manages users on the served
// /admin/v1, and the keys do not stand in for each other.
func TestServeAdminKey(t *testing.T) {
	data, cred := newOrg(t)
	p := serve(t, data, freeAddr(t))
	c := p.client(client.Config{CID: cred.CID, APIKey: cred.APIKey})
	bearer := func(key string) client.Header { return client.Header{Name: "Authorization", Value: "Bearer " + key} }

	r, err := c.Do("POST", "/admin/v1/users", []byte(`{"userID":"user-1","mobile":"+14155550100"}`), bearer(cred.AdminKey))
	if err != nil || r.Status != 201 || !strings.Contains(string(r.Body), `"mobile":"+14155550100"`) {
		t.Fatalf("create a user with the admin key: %v %d %s", err, r.Status, r.Body)
	}
	r, err = c.Do("GET", "/admin/v1/users/user-1", nil, bearer(cred.APIKey))
	if err != nil || r.Status != 401 || !strings.Contains(string(r.Body), `"errorCode":"invalid_api_key"`) {
		t.Fatalf("the API key on /admin/v1: %v %d %s", err, r.Status, r.Body)
	}
	r, err = c.Do("GET", "/v1/decisions/01JBZ8Q3Y00000000000000000", nil, client.Header{Name: "apikey", Value: cred.AdminKey})
	if err != nil || r.Status != 401 || !strings.Contains(string(r.Body), `"errorCode":"invalid_api_key"`) {
		t.Fatalf("the admin key as apikey: %v %d %s", err, r.Status, r.Body)
	}
}
