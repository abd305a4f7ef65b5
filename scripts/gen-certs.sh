#!/bin/sh
# Makes a CA and certificates for asg's mutual TLS, with the openssl CLI.
#   scripts/gen-certs.sh DIR [GROUP [ID ...]]
# DIR/ca.pem                       the CA (its key: DIR/ca.key, keep it safe)
# DIR/manager.pem, manager.key     CN asg-manager, for tls.cert / tls.key
# DIR/agents.pem, agents.key       CN "GROUP-*": every agent of the group
#                                  (tls.agent_cert / tls.agent_key)
# DIR/ID.pem, ID.key               CN ID: one agent, for an instance of its own
# Each certificate names its role in its SAN (asg-manager, asg-agent): that
# is what the other side checks, whatever address it dialled.
set -eu
dir=${1:?usage: $0 DIR [GROUP [ID ...]]}
group=${2:-asg}
[ $# -ge 2 ] && shift 2 || shift $#
mkdir -p "$dir"
umask 077
days=825

key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }

if [ ! -f "$dir/ca.pem" ]; then
    key "$dir/ca.key"
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days $days -subj "/CN=asg CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/ca.pem"
fi

# leaf NAME CN SAN
leaf() {
    key "$dir/$1.key"
    openssl req -new -key "$dir/$1.key" -subj "/CN=$2" -out "$dir/$1.csr"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:%s\n' "$3" > "$dir/$1.ext"
    openssl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -days $days -sha256 -extfile "$dir/$1.ext" -out "$dir/$1.pem" 2>/dev/null
    rm -f "$dir/$1.csr" "$dir/$1.ext"
}

[ -f "$dir/manager.pem" ] || leaf manager asg-manager asg-manager
leaf agents "$group-*" asg-agent
for id in "$@"; do
    leaf "$id" "$id" asg-agent
done
chmod 0644 "$dir"/*.pem
echo "certificates in $dir: ca.pem, manager.pem/.key, agents.pem/.key (CN $group-*)${*:+, and }$*"
