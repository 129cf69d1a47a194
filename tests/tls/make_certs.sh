#!/usr/bin/env bash
# Makes the TLS tests' certificates in DIR with the openssl command, at test time:
#
#   tests/tls/make_certs.sh DIR
#
#   ca.pem ca.key                  the test CA the clients trust
#   server.pem server.key          localhost (DNS:localhost, IP:127.0.0.1), signed by the CA
#   expired.pem expired.key        localhost, signed by the CA, valid only in January 2020
#   other-ca.pem                   another CA, which nobody trusts
#   stranger.pem stranger.key      localhost, signed by other-ca (an unknown CA)
#   other.pem other.key            other.example (DNS), signed by the CA: a second name (SNI)
#   server-enc.key                 server.key encrypted with a passphrase ("secret")
#   client.pem client.key          a client's certificate (CN=weft test client, O=weft tests), signed
#                                  by the CA: mutual TLS
#   cadir/                         the CA in a directory hashed by `openssl rehash` (ca_dir)
#   emptydir/                      a directory with no CA in it
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"

ca() { # name subject
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" \
    -days 30 -subj "$2" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
}
ca ca "/CN=weft test CA"
ca other-ca "/CN=weft other CA"

cat >leaf.ext <<'EXT'
basicConstraints=CA:FALSE
subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth,clientAuth
EXT

sed 's/^subjectAltName=.*/subjectAltName=DNS:other.example/' leaf.ext >other.ext

leaf() { # name issuer [extfile]
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" \
    -subj "/CN=localhost" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 30 -extfile "${3:-leaf.ext}" \
    -out "$1.pem" 2>/dev/null
}
leaf server ca
leaf stranger other-ca
leaf other ca other.ext

# A client's certificate: a subject of two parts, for the peer-subject getters.
printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n' >client.ext
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout client.key -out client.csr \
  -subj "/O=weft tests/CN=weft test client" 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -extfile client.ext \
  -out client.pem 2>/dev/null

# The CA as a hashed directory (ca_dir), and one that holds no CA.
mkdir -p cadir emptydir
cp ca.pem cadir/
openssl rehash cadir

# An expired certificate: `openssl ca` is the command that takes explicit dates.
mkdir -p db
: >db/index.txt
echo 1000 >db/serial
cat >ca.cnf <<'CNF'
[ca]
default_ca = test
[test]
database = db/index.txt
serial = db/serial
new_certs_dir = db
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[leaf]
basicConstraints = CA:FALSE
subjectAltName = DNS:localhost,IP:127.0.0.1
extendedKeyUsage = serverAuth
CNF
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout expired.key -out expired.csr \
  -subj "/CN=localhost" 2>/dev/null
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem \
  -startdate 20200101000000Z -enddate 20200131000000Z -extensions leaf -notext 2>/dev/null
openssl pkey -in server.key -aes256 -passout pass:secret -out server-enc.key 2>/dev/null
