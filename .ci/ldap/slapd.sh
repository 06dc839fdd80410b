#!/usr/bin/env bash
# A throwaway OpenLDAP directory for the LDAP sign-in tests (Debian's slapd).
#
#   .ci/ldap/slapd.sh install                    # Debian's slapd and ldap-utils, when absent
#   .ci/ldap/slapd.sh start DIR PORT TLS_PORT   # ldap:// on PORT (StartTLS too), ldaps:// on TLS_PORT
#   .ci/ldap/slapd.sh stop DIR
#
# DIR gets a CA and a server certificate for 127.0.0.1/localhost (ca.pem is
# what the tests trust), slapd.conf, the database and slapd.pid. The
# directory: base dc=kailash,dc=test; a service account
# cn=kailash-svc,dc=kailash,dc=test (password svc-secret) that may search;
# people under ou=people (uid, mail, givenName, sn, departmentNumber,
# employeeType = clearance, l = country, title, o = tenant) and groupOfNames under ou=groups, kept in the people's
# memberOf by the memberof overlay. Anonymous users may bind, nothing else;
# a DN with an empty password binds unauthenticated, as in AD.
# Users and their passwords are the test's fixtures
# (crates/kailash-auth/tests/ldap.rs) and are printed by nothing here.
set -euo pipefail

cmd=${1:?install|start|stop}

if [[ "$cmd" == install ]]; then
  if command -v slapd >/dev/null 2>&1 || [[ -x /usr/sbin/slapd ]]; then
    command -v ldapadd >/dev/null 2>&1 && exit 0
  fi
  sudo=""
  if [[ "$(id -u)" -ne 0 ]]; then
    sudo -n true 2>/dev/null || { echo "slapd is missing and apt-get needs root" >&2; exit 1; }
    sudo="sudo -n"
  fi
  # No daemon starts during the install (the package's own slapd on 389).
  policy_rc=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    policy_rc=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy_rc" >/dev/null
    $sudo chmod 755 "$policy_rc"
  fi
  rc=0
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slapd ldap-utils >/dev/null ||
    rc=1
  [[ -n "$policy_rc" ]] && $sudo rm -f "$policy_rc"
  exit "$rc"
fi

dir=${2:?directory}

case "$cmd" in
stop)
  if [[ -f "$dir/slapd.pid" ]]; then
    kill "$(cat "$dir/slapd.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [[ -f "$dir/slapd.pid" ]] || break; sleep 0.1; done
  fi
  exit 0
  ;;
start) ;;
*) echo "usage: $0 start DIR PORT TLS_PORT | stop DIR" >&2; exit 2 ;;
esac

port=${3:?port}
tls_port=${4:?tls port}
slapd=$(command -v slapd || echo /usr/sbin/slapd)
mkdir -p "$dir/db"
dir=$(cd "$dir" && pwd)

if [[ ! -f "$dir/ca.pem" ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=kailash test LDAP CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 30 -extfile "$dir/ext.cnf" -out "$dir/server.pem" 2>/dev/null
  chmod 600 "$dir/server.key"
fi

root_pw=root-secret
cat > "$dir/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile $dir/slapd.pid
# Accept unauthenticated binds (a DN with an empty password) as Active
# Directory does by default, so the tests prove the client refuses them.
allow bind_anon_dn
TLSCACertificateFile $dir/ca.pem
TLSCertificateFile $dir/server.pem
TLSCertificateKeyFile $dir/server.key
database mdb
suffix "dc=kailash,dc=test"
rootdn "cn=root,dc=kailash,dc=test"
rootpw $root_pw
directory $dir/db
maxsize 16777216
overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint true
access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by dn.exact="cn=kailash-svc,dc=kailash,dc=test" read
  by self read
  by * none
CONF

"$slapd" -f "$dir/slapd.conf" -h "ldap://127.0.0.1:$port/ ldaps://127.0.0.1:$tls_port/"
for _ in $(seq 100); do
  ldapsearch -x -H "ldap://127.0.0.1:$port" -b "" -s base >/dev/null 2>&1 && break
  sleep 0.1
done

hash() { slappasswd -h '{SSHA}' -s "$1"; }
ldapadd -x -H "ldap://127.0.0.1:$port" -D "cn=root,dc=kailash,dc=test" -w "$root_pw" >/dev/null <<LDIF
dn: dc=kailash,dc=test
objectClass: dcObject
objectClass: organization
o: kailash test
dc: kailash

dn: cn=kailash-svc,dc=kailash,dc=test
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: kailash-svc
userPassword: $(hash svc-secret)

dn: ou=people,dc=kailash,dc=test
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=kailash,dc=test
objectClass: organizationalUnit
ou: groups

dn: uid=lena,ou=people,dc=kailash,dc=test
objectClass: inetOrgPerson
uid: lena
cn: Lena Lind
givenName: Lena
sn: Lind
mail: lena@acme.example
departmentNumber: engineering
employeeType: confidential
l: GB
title: Data Scientist
o: acme
userPassword: $(hash 'Lena-Directory-Pass-1')

dn: uid=omar,ou=people,dc=kailash,dc=test
objectClass: inetOrgPerson
uid: omar
cn: Omar Ortiz
givenName: Omar
sn: Ortiz
mail: omar@acme.example
departmentNumber: engineering
employeeType: secret
l: US
title: Engineering Lead
o: acme
userPassword: $(hash 'Omar-Directory-Pass-1')

dn: uid=paula,ou=people,dc=kailash,dc=test
objectClass: inetOrgPerson
uid: paula
cn: Paula Park
givenName: Paula
sn: Park
mail: paula@acme.example
departmentNumber: operations
o: acme
userPassword: $(hash 'Paula-Directory-Pass-1')

dn: cn=kailash-admins,ou=groups,dc=kailash,dc=test
objectClass: groupOfNames
cn: kailash-admins
member: uid=omar,ou=people,dc=kailash,dc=test

dn: cn=data-science,ou=groups,dc=kailash,dc=test
objectClass: groupOfNames
cn: data-science
member: uid=lena,ou=people,dc=kailash,dc=test
member: uid=omar,ou=people,dc=kailash,dc=test
LDIF
echo "slapd on ldap://127.0.0.1:$port and ldaps://127.0.0.1:$tls_port (CA $dir/ca.pem)"
