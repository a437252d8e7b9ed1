#!/usr/bin/env bash
# Certificates for a Dask cluster that runs vp3d batches over TLS (`--scheduler tls://HOST:8786`).
#   bash scripts/make_cluster_certs.sh DIR [NAME ...]   # default names: scheduler worker client
# Makes DIR/ca.pem (the cluster's own certificate authority; DIR/ca.key signs, keep it off the
# cluster) and, per NAME, NAME.pem + NAME.key signed by it. Dask checks both ends of every
# connection against ca.pem (mutual TLS), so only a machine holding one of these pairs can join as
# a worker or submit work. Copy ca.pem plus one pair to each machine; DAYS=365 by default.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR [NAME ...]" >&2; exit 2; }
command -v openssl >/dev/null 2>&1 || { echo "$0 needs the openssl command" >&2; exit 1; }
dir=$1
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(scheduler worker client)
days=${DAYS:-365}
mkdir -p "$dir"
umask 077  # the keys are readable by their owner only
curve=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
if [ ! -e "$dir/ca.pem" ]; then
  openssl req -x509 "${curve[@]}" -keyout "$dir/ca.key" -out "$dir/ca.pem" -days "$days" \
    -subj "/CN=vp3d Dask cluster CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
ext=$(mktemp)
trap 'rm -f "$ext" "$dir"/*.csr' EXIT
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth,clientAuth" >"$ext"
for name in "${names[@]}"; do
  openssl req "${curve[@]}" -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "/CN=vp3d $name" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -out "$dir/$name.pem" -days "$days" -extfile "$ext" 2>/dev/null
  chmod 644 "$dir/$name.pem"
  echo "$dir/$name.pem + $dir/$name.key"
done
chmod 644 "$dir/ca.pem"
