package ingest

import (
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// CORS and browser keys.
//
// A page on another origin posts with a browser key (Source.Browser, never
// trusted), whose Origins list the pages allowed to use it. The preflight
// (OPTIONS) carries no key, so it is answered for any origin that some
// browser key lists; the request itself is checked against its own key in
// authenticate: a key used from an origin it does not list gets 403
// origin_not_allowed and no CORS headers, so the browser shows the page
// nothing. Same-origin requests (the gateway's own /demo/ page) need no CORS
// and are not refused for their origin. Credentials are never asked for:
// Access-Control-Allow-Credentials is not sent, and the agent sends none.
//
// sendBeacon cannot set headers, so a browser key may come as ?key= (and
// the batch id as ?idempotency_key=). Only keys that are not secrets may:
// browser keys, and loopback-only keys such as the standalone "dev" key. A
// secret key in a URL would end up in access logs.

const (
	corsAllowMethods = "GET, POST, OPTIONS"
	corsAllowHeaders = "Authorization, Content-Type, Content-Encoding, Idempotency-Key, X-Sluice-Key"
	// corsMaxAge is how long a browser may cache a preflight answer (Chrome
	// caps it at two hours).
	corsMaxAge = "7200"
)

// cors answers preflights and marks cross-origin requests from origins some
// browser key allows; authenticate withdraws the mark when the request's
// own key does not allow the origin.
func (s *Server) cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		origin := r.Header.Get("Origin")
		if origin == "" || sameOrigin(r, origin) {
			return next(c)
		}
		h := c.Response().Header()
		h.Add("Vary", "Origin")
		allowed := s.keys.browserOrigin(origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !allowed {
				return c.NoContent(http.StatusForbidden)
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
				h.Set("Access-Control-Allow-Private-Network", "true")
			}
			return c.NoContent(http.StatusNoContent)
		}
		if allowed {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", "Retry-After")
		}
		return next(c)
	}
}

// requestKey reads the key from the headers (presentedKey), else from the
// query parameter key (fromQuery).
func requestKey(r *http.Request) (key string, fromQuery bool) {
	if k := presentedKey(r); k != "" {
		return k, false
	}
	if r.URL.RawQuery == "" {
		return "", false
	}
	k := r.URL.Query().Get("key")
	return k, k != ""
}

// browserCheck refuses a key sent where it may not be: a secret key in the
// query, or any key from a cross-origin page its source does not list.
func (s *Server) browserCheck(c echo.Context, src *Source, fromQuery bool) error {
	if fromQuery && !src.Browser && !src.LoopbackOnly {
		return errf(http.StatusUnauthorized, "key_in_query",
			"only browser keys may be sent as ?key=; send Authorization: Bearer <key>")
	}
	r := c.Request()
	origin := r.Header.Get("Origin")
	if origin == "" {
		return nil
	}
	// A loopback-only key serves pages on loopback addresses only, which
	// keeps a DNS-rebound page (evil.example resolving to 127.0.0.1) out.
	ok := (!src.LoopbackOnly || loopbackOrigin(origin)) && (sameOrigin(r, origin) || src.allowsOrigin(origin))
	if ok {
		return nil
	}
	h := c.Response().Header()
	h.Del("Access-Control-Allow-Origin")
	h.Del("Access-Control-Expose-Headers")
	return errf(http.StatusForbidden, "origin_not_allowed", "the key may not be used from origin %s", validText(origin))
}

// allowsOrigin reports whether a browser key lists origin.
func (s *Source) allowsOrigin(origin string) bool {
	if !s.Browser {
		return false
	}
	origin = normalOrigin(origin)
	for _, o := range s.Origins {
		if o == "*" || normalOrigin(o) == origin {
			return true
		}
	}
	return false
}

// browserOrigin reports whether any browser key lists origin.
func (k *Keys) browserOrigin(origin string) bool {
	for _, s := range k.sources {
		if s.allowsOrigin(origin) {
			return true
		}
	}
	return false
}

// ValidOrigin reports whether o can be listed in Source.Origins: "*", or
// http(s)://host[:port] with nothing after it. The opaque origin "null"
// cannot: any page can make one.
func ValidOrigin(o string) bool {
	if o == "*" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && u.User == nil
}

func normalOrigin(o string) string { return strings.ToLower(strings.TrimSuffix(o, "/")) }

// sameOrigin reports whether the page that sent the request was served by
// this host (scheme aside: TLS may end at a proxy in front).
func sameOrigin(r *http.Request, origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// loopbackOrigin reports whether origin names localhost or a loopback IP.
func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
