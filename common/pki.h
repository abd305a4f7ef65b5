/* The manager's own certificate authority (tls.mode = "auto", the
 * default): on first start the supervisor makes a CA and the manager's
 * certificate in a 0700 directory; the controller signs one certificate per
 * instance (CN = its id), so that every gRPC conversation is mutual TLS and
 * each identity is exactly one instance. Made with the OpenSSL library:
 * EC P-256 keys, SHA-256 signatures. */
#ifndef ASG_PKI_H
#define ASG_PKI_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "secret.h"

/* File names inside the directory. Agents' material lives in agents/. */
#define PKI_CA_CERT "ca.crt"
#define PKI_CA_KEY "ca.key"
#define PKI_MGR_CERT "manager.crt"
#define PKI_MGR_KEY "manager.key"
#define PKI_JOIN_KEY "join.key"   /* HMAC key of the EC2 join tokens */
#define PKI_JOIN_TOKEN_LEN 64
#define PKI_PEM_MAX (64 * 1024)   /* the largest certificate or key file read */

/* Names the certificates carry (CN, SAN DNS), checked by the other side
 * whatever address it dialled: agents present "asg-agent", the manager
 * "asg-manager". */
#define PKI_AGENT_NAME "asg-agent"
#define PKI_MANAGER_NAME "asg-manager"

/* The directory cfg uses: tls.dir, or /var/lib/asg/GROUP. */
void pki_dir(const struct asg_config *cfg, char *out, size_t size);


/* Creates (or checks) the directory and the CA and manager certificate in
 * it, and the group's nonce (common/identity.h). The directory must be ours and 0700; a file there that is a link or
 * belongs to another uid is refused. 0, or -1 with "path: reason". */
int pki_prepare(const char *dir, char *err, size_t errsize);


/* Signing with the CA: load it once, issue many. */
struct pki_ca;
struct pki_ca *pki_ca_open(const char *dir, char *err, size_t errsize);
void pki_ca_close(struct pki_ca *ca);

/* Where the controller keeps a launched instance's key and certificate:
 * DIR/agents/ID.crt and ID.key. */
void pki_agent_paths(const char *dir, const char *id, char *cert, char *key, size_t size);
/* A fresh key and a certificate for instance id (CN id, SAN asg-agent),
 * written to the two paths (0600, never through a link). */
int pki_issue(struct pki_ca *ca, const char *id, const char *cert_path, const char *key_path,
              char *err, size_t errsize);
/* Removes an instance's files (it is gone). */
void pki_forget_agent(const char *dir, const char *id);

/* Signs a PEM certificate request for instance id: the CN is set to id
 * whatever the request says, and only its public key is used. *out is a
 * malloc'd PEM certificate. */
int pki_sign_request(struct pki_ca *ca, const char *csr_pem, size_t csr_len, const char *id,
                     char **out, char *err, size_t errsize);

/* A new EC key and a certificate request for cn, both PEM, malloc'd (the
 * agent's side of a join). */
int pki_make_request(const char *cn, char **key_pem, char **csr_pem, char *err, size_t errsize);

/* EC2 bootstrap. An instance's one-time join token, written into its user
 * data: HMAC-SHA256 under the manager's join key of its launch token (the
 * RunInstances ClientToken), as 64 hex digits. So a token is good for the
 * one launch it was made for, and only the manager can make one. */
int pki_join_token(const struct pki_ca *ca, const char *launch_token, char out[PKI_JOIN_TOKEN_LEN + 1]);
/* Compared in constant time. */
bool pki_join_token_matches(const struct pki_ca *ca, const char *launch_token, const char *token);

/* The CA certificate's PEM text, malloc'd. */
char *pki_ca_pem(struct pki_ca *ca);

/* The operator's credential for the status API (docs/monitoring.md):
 * DIR/api.token, 64 random hex digits, made on first start, 0600 in the
 * 0700 directory, readable by the manager's user only. */
#define PKI_API_TOKEN "api.token"
#define PKI_API_TOKEN_LEN 64
/* Makes the directory (as pki_prepare does) and the token if missing. */
int pki_api_token_prepare(const char *dir, char *err, size_t errsize);
/* Reads the token: the directory must be ours and 0700, the file ours,
 * no link, mode 0600 or stricter, exactly 64 hex digits. */
int pki_api_token_read(const char *dir, char out[PKI_API_TOKEN_LEN + 1], char *err, size_t errsize);


#endif
