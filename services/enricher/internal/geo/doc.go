// Package geo looks client IPs up in MaxMind-format (.mmdb) city and ASN
// databases, classifies addresses that cannot be looked up (private,
// loopback, unparseable, ...) and reloads the databases when their files
// change.
package geo
