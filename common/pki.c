#define _GNU_SOURCE
#include "pki.h"
#include "identity.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CA_DAYS 3650
#define LEAF_DAYS 825

struct pki_ca {
    char dir[256];
    X509 *cert;
    EVP_PKEY *key;
    unsigned char join_key[32];  /* the join tokens' HMAC key */
};

void pki_dir(const struct asg_config *cfg, char *out, size_t size)
{
    if (cfg->tls_dir[0])
        snprintf(out, size, "%s", cfg->tls_dir);
    else
        snprintf(out, size, "/var/lib/asg/%s", cfg->group_name);
}

static void ssl_reason(char *err, size_t errsize, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[160] = "unknown error";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    snprintf(err, errsize, "%s: %s", what, buf);
}

/* ---- certificates ---- */

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e)
        return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

/* A certificate for pub named cn, signed by (issuer, ikey); issuer NULL
 * makes it self-signed (the CA). san is the role name peers check. */
static X509 *make_cert(EVP_PKEY *pub, const char *cn, const char *san, X509 *issuer, EVP_PKEY *ikey)
{
    X509 *x = X509_new();
    BIGNUM *bn = BN_new();
    bool ok = x && bn && X509_set_version(x, 2) && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
              BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) &&
              X509_gmtime_adj(X509_getm_notBefore(x), -3600) &&
              X509_gmtime_adj(X509_getm_notAfter(x), 86400L * (issuer ? LEAF_DAYS : CA_DAYS)) &&
              X509_set_pubkey(x, pub) &&
              X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                         (const unsigned char *)cn, -1, -1, 0) &&
              X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
    BN_free(bn);
    if (ok && !issuer) {
        ok = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") == 0 &&
             add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") == 0;
    } else if (ok) {
        char alt[96];
        snprintf(alt, sizeof alt, "DNS:%s", san);
        ok = add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
             add_ext(x, issuer, NID_key_usage, "critical,digitalSignature") == 0 &&
             add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth") == 0 &&
             add_ext(x, issuer, NID_subject_alt_name, alt) == 0;
    }
    if (ok)
        ok = X509_sign(x, ikey ? ikey : pub, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static char *pem_of(int (*write)(BIO *, const void *), const void *obj, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b && write(b, obj)) {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        if (n > 0 && (out = malloc((size_t)n + 1)) != NULL) {
            memcpy(out, data, (size_t)n);
            out[n] = '\0';
            if (len)
                *len = (size_t)n;
        }
    }
    BIO_free(b);
    return out;
}

static int write_x509(BIO *b, const void *x) { return PEM_write_bio_X509(b, (X509 *)x); }
static int write_key(BIO *b, const void *k)
{
    return PEM_write_bio_PrivateKey(b, (EVP_PKEY *)k, NULL, NULL, 0, NULL, NULL);
}

/* Writes key and certificate as two private files. */
static int save_pair(const char *cert_path, const char *key_path, X509 *x, EVP_PKEY *k,
                     char *err, size_t errsize)
{
    size_t cl = 0, kl = 0;
    char *cp = pem_of(write_x509, x, &cl), *kp = pem_of(write_key, k, &kl);
    int rc = -1;
    if (!cp || !kp)
        ssl_reason(err, errsize, "cannot encode a certificate");
    else if (secret_write(key_path, kp, kl, err, errsize) == 0 &&
             secret_write(cert_path, cp, cl, err, errsize) == 0)
        rc = 0;
    if (kp)
        OPENSSL_cleanse(kp, kl);
    free(kp);
    free(cp);
    return rc;
}

static void *parse_cert(BIO *b) { return PEM_read_bio_X509(b, NULL, NULL, NULL); }
static void *parse_key(BIO *b) { return PEM_read_bio_PrivateKey(b, NULL, NULL, NULL); }

/* Parses a PEM file of ours with parse; the text is wiped after, as it may
 * hold a key. */
static void *read_pem_file(const char *path, void *(*parse)(BIO *), char *err, size_t errsize)
{
    char *pem = secret_read(path, PKI_PEM_MAX, err, errsize);
    if (!pem)
        return NULL;
    BIO *b = BIO_new_mem_buf(pem, -1);
    void *obj = b ? parse(b) : NULL;
    BIO_free(b);
    OPENSSL_cleanse(pem, strlen(pem));
    free(pem);
    if (!obj)
        ssl_reason(err, errsize, path);
    return obj;
}

static void join(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

/* The join tokens' key: 32 random bytes, as hex, made once. */
static int make_join_key(const char *path, char *err, size_t errsize)
{
    if (access(path, F_OK) == 0)
        return 0;
    unsigned char k[32];
    char hex[65];
    if (RAND_bytes(k, sizeof k) != 1) {
        ssl_reason(err, errsize, "cannot make the join key");
        return -1;
    }
    for (size_t i = 0; i < sizeof k; i++)
        snprintf(hex + 2 * i, 3, "%02x", k[i]);
    OPENSSL_cleanse(k, sizeof k);
    int rc = secret_write(path, hex, 64, err, errsize);
    OPENSSL_cleanse(hex, sizeof hex);
    return rc;
}

static int read_join_key(const char *dir, unsigned char key[32], char *err, size_t errsize)
{
    char path[300];
    join(path, sizeof path, dir, PKI_JOIN_KEY);
    char *hex = secret_read(path, 128, err, errsize);
    if (!hex)
        return -1;
    int rc = strspn(hex, "0123456789abcdef") >= 64 ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            rc = -1;
        key[i] = (unsigned char)v;
    }
    OPENSSL_cleanse(hex, strlen(hex));
    free(hex);
    if (rc != 0)
        snprintf(err, errsize, "%s: not 64 hex digits", path);
    return rc;
}

/* ---- the status API's token ---- */

/* 32 random bytes as 64 hex digits into path, unless a file is there
 * already: written aside, then linked into place (link() never replaces),
 * so two managers sharing the directory (an HA pair) starting at once end
 * with one token, never a half-written one. */
static int make_random_hex_file(const char *path, const char *what, char *err, size_t errsize)
{
    unsigned char k[32];
    char hex[65], tmp[320];
    if (RAND_bytes(k, sizeof k) != 1) {
        ssl_reason(err, errsize, what);
        return -1;
    }
    for (size_t i = 0; i < sizeof k; i++)
        snprintf(hex + 2 * i, 3, "%02x", k[i]);
    OPENSSL_cleanse(k, sizeof k);
    snprintf(tmp, sizeof tmp, "%s.new%d", path, (int)getpid());
    int rc = secret_write(tmp, hex, 64, err, errsize);
    OPENSSL_cleanse(hex, sizeof hex);
    if (rc == 0 && link(tmp, path) != 0 && errno != EEXIST) {
        snprintf(err, errsize, "%s: %s", path, strerror(errno));
        rc = -1;
    }
    unlink(tmp);
    return rc;
}

int pki_api_token_prepare(const char *dir, char *err, size_t errsize)
{
    char path[300];
    join(path, sizeof path, dir, PKI_API_TOKEN);
    if (secret_own_dir(dir, err, errsize) != 0)
        return -1;
    struct stat st;
    if (lstat(path, &st) == 0)
        return 0; /* checked when read */
    if (make_random_hex_file(path, "cannot make the API token", err, errsize) != 0)
        return -1;
    log_info("made the status API's token %s (readable by uid %u only)", path, (unsigned)geteuid());
    return 0;
}

/* A directory of ours that nobody else may enter: checked, never made. */
static int private_dir(const char *dir, char *err, size_t errsize)
{
    struct stat st;
    if (lstat(dir, &st) != 0) {
        snprintf(err, errsize, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
        snprintf(err, errsize, "%s: not a 0700 directory of uid %u (mode %04o, uid %u): refused",
                 dir, (unsigned)geteuid(), (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
        return -1;
    }
    return 0;
}

int pki_api_token_read(const char *dir, char out[PKI_API_TOKEN_LEN + 1], char *err, size_t errsize)
{
    char path[300];
    join(path, sizeof path, dir, PKI_API_TOKEN);
    out[0] = '\0';
    if (private_dir(dir, err, errsize) != 0)
        return -1;
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077)) {
        snprintf(err, errsize, "%s: mode %04o lets others read it; it must be 0600", path,
                 (unsigned)(st.st_mode & 07777));
        return -1;
    }
    char *text = secret_read(path, 128, err, errsize);
    if (!text)
        return -1;
    size_t n = strcspn(text, "\r\n");
    int rc = n == PKI_API_TOKEN_LEN && strspn(text, "0123456789abcdef") == n ? 0 : -1;
    if (rc == 0) {
        memcpy(out, text, n);
        out[n] = '\0';
    } else {
        snprintf(err, errsize, "%s: not %d hex digits (remove it and restart the manager for a new one)",
                 path, PKI_API_TOKEN_LEN);
    }
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    return rc;
}

int pki_join_token(const struct pki_ca *ca, const char *launch_token, char out[PKI_JOIN_TOKEN_LEN + 1])
{
    static const char label[] = "asg join v1\n";
    unsigned char msg[sizeof label + 128], mac[EVP_MAX_MD_SIZE];
    size_t tl = strlen(launch_token);
    unsigned int maclen = 0;
    if (tl == 0 || tl > 128)
        return -1;
    memcpy(msg, label, sizeof label - 1);
    memcpy(msg + sizeof label - 1, launch_token, tl);
    if (!HMAC(EVP_sha256(), ca->join_key, sizeof ca->join_key, msg, sizeof label - 1 + tl, mac, &maclen) ||
        maclen != 32)
        return -1;
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    return 0;
}

bool pki_join_token_matches(const struct pki_ca *ca, const char *launch_token, const char *token)
{
    char want[PKI_JOIN_TOKEN_LEN + 1];
    if (pki_join_token(ca, launch_token, want) != 0 || strlen(token) != PKI_JOIN_TOKEN_LEN)
        return false;
    bool ok = CRYPTO_memcmp(want, token, PKI_JOIN_TOKEN_LEN) == 0;
    OPENSSL_cleanse(want, sizeof want);
    return ok;
}

int pki_prepare(const char *dir, char *err, size_t errsize)
{
    char agents[300], cap[300], kp[300], mc[300], mk[300];
    join(agents, sizeof agents, dir, "agents");
    join(cap, sizeof cap, dir, PKI_CA_CERT);
    join(kp, sizeof kp, dir, PKI_CA_KEY);
    join(mc, sizeof mc, dir, PKI_MGR_CERT);
    join(mk, sizeof mk, dir, PKI_MGR_KEY);
    if (secret_own_dir(dir, err, errsize) != 0 || secret_own_dir(agents, err, errsize) != 0)
        return -1;
    if (access(cap, F_OK) != 0 && access(kp, F_OK) != 0) {
        EVP_PKEY *k = EVP_EC_gen("P-256");
        X509 *x = k ? make_cert(k, "asg CA", NULL, NULL, NULL) : NULL;
        int rc = x ? save_pair(cap, kp, x, k, err, errsize) : -1;
        if (!x)
            ssl_reason(err, errsize, "cannot make the CA");
        X509_free(x);
        EVP_PKEY_free(k);
        if (rc != 0)
            return -1;
        log_info("made a certificate authority for mutual TLS in %s", dir);
    }
    char jk[300];
    join(jk, sizeof jk, dir, PKI_JOIN_KEY);
    if (make_join_key(jk, err, errsize) != 0)
        return -1;
    char nonce[GROUP_NONCE_HEX + 1]; /* beside the CA: agents issued here may join the group */
    if (group_nonce_load(dir, true, nonce, err, errsize) != 0)
        return -1;
    struct pki_ca *ca = pki_ca_open(dir, err, errsize);
    if (!ca)
        return -1;
    int rc = 0;
    X509 *have = access(mc, F_OK) == 0 ? read_pem_file(mc, parse_cert, err, errsize) : NULL;
    if (have && X509_verify(have, ca->key) != 1) {
        snprintf(err, errsize, "%s: not signed by %s (remove it to have a new one made)", mc, cap);
        rc = -1;
    } else if (!have && access(mc, F_OK) == 0) {
        rc = -1;
    } else if (!have) {
        EVP_PKEY *k = EVP_EC_gen("P-256");
        X509 *x = k ? make_cert(k, PKI_MANAGER_NAME, PKI_MANAGER_NAME, ca->cert, ca->key) : NULL;
        rc = x ? save_pair(mc, mk, x, k, err, errsize) : -1;
        if (!x)
            ssl_reason(err, errsize, "cannot make the manager's certificate");
        X509_free(x);
        EVP_PKEY_free(k);
    }
    X509_free(have);
    pki_ca_close(ca);
    return rc;
}

struct pki_ca *pki_ca_open(const char *dir, char *err, size_t errsize)
{
    struct pki_ca *ca = calloc(1, sizeof *ca);
    char cp[300], kp[300];
    if (!ca) {
        snprintf(err, errsize, "out of memory");
        return NULL;
    }
    copy_str(ca->dir, sizeof ca->dir, dir);
    join(cp, sizeof cp, dir, PKI_CA_CERT);
    join(kp, sizeof kp, dir, PKI_CA_KEY);
    if (!(ca->cert = read_pem_file(cp, parse_cert, err, errsize)) ||
        !(ca->key = read_pem_file(kp, parse_key, err, errsize))) {
        pki_ca_close(ca);
        return NULL;
    }
    if (X509_check_private_key(ca->cert, ca->key) != 1) {
        snprintf(err, errsize, "%s does not match %s", kp, cp);
        pki_ca_close(ca);
        return NULL;
    }
    if (read_join_key(dir, ca->join_key, err, errsize) != 0) {
        pki_ca_close(ca);
        return NULL;
    }
    return ca;
}

void pki_ca_close(struct pki_ca *ca)
{
    if (!ca)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    OPENSSL_cleanse(ca->join_key, sizeof ca->join_key);
    free(ca);
}

char *pki_ca_pem(struct pki_ca *ca)
{
    return pem_of(write_x509, ca->cert, NULL);
}

void pki_agent_paths(const char *dir, const char *id, char *cert, char *key, size_t size)
{
    snprintf(cert, size, "%s/agents/%s.crt", dir, id);
    snprintf(key, size, "%s/agents/%s.key", dir, id);
}

/* An instance id that could pass for a role: the manager's name above
 * all (rpc.c believes it only with the manager's SAN, and this keeps the
 * CA from ever writing it into an agent's CN). */
static bool role_name(const char *id, char *err, size_t errsize)
{
    if (strcasecmp(id, PKI_MANAGER_NAME) != 0 && strcasecmp(id, PKI_AGENT_NAME) != 0)
        return false;
    snprintf(err, errsize, "'%s' is a role's name, not an instance id: refused", id);
    return true;
}

int pki_issue(struct pki_ca *ca, const char *id, const char *cert_path, const char *key_path,
              char *err, size_t errsize)
{
    if (!valid_instance_id(id, strlen(id))) {
        snprintf(err, errsize, "'%.64s' is not an instance id", id);
        return -1;
    }
    if (role_name(id, err, errsize))
        return -1;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = k ? make_cert(k, id, PKI_AGENT_NAME, ca->cert, ca->key) : NULL;
    int rc = x ? save_pair(cert_path, key_path, x, k, err, errsize) : -1;
    if (!x)
        ssl_reason(err, errsize, "cannot make an agent certificate");
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

void pki_forget_agent(const char *dir, const char *id)
{
    char cert[300], key[300];
    if (!valid_instance_id(id, strlen(id)))
        return;
    pki_agent_paths(dir, id, cert, key, sizeof cert);
    unlink(key);
    unlink(cert);
}

int pki_sign_request(struct pki_ca *ca, const char *csr_pem, size_t csr_len, const char *id,
                     char **out, char *err, size_t errsize)
{
    *out = NULL;
    if (role_name(id, err, errsize))
        return -1;
    if (csr_len == 0 || csr_len > 8192) {
        snprintf(err, errsize, "certificate request of %zu bytes (1..8192)", csr_len);
        return -1;
    }
    BIO *b = BIO_new_mem_buf(csr_pem, (int)csr_len);
    X509_REQ *req = b ? PEM_read_bio_X509_REQ(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    EVP_PKEY *pub = req ? X509_REQ_get0_pubkey(req) : NULL;
    int rc = -1;
    if (!req || !pub) {
        ssl_reason(err, errsize, "not a PEM certificate request");
    } else if (X509_REQ_verify(req, pub) != 1) {
        snprintf(err, errsize, "the certificate request's signature does not verify");
    } else if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC || EVP_PKEY_get_bits(pub) < 256) {
        snprintf(err, errsize, "the certificate request must carry an EC key of 256 bits or more");
    } else {
        X509 *x = make_cert(pub, id, PKI_AGENT_NAME, ca->cert, ca->key);
        if (x && (*out = pem_of(write_x509, x, NULL)) != NULL)
            rc = 0;
        else
            ssl_reason(err, errsize, "cannot sign the request");
        X509_free(x);
    }
    ERR_clear_error();
    X509_REQ_free(req);
    return rc;
}

static int write_req(BIO *b, const void *r) { return PEM_write_bio_X509_REQ(b, (X509_REQ *)r); }

int pki_make_request(const char *cn, char **key_pem, char **csr_pem, char *err, size_t errsize)
{
    *key_pem = *csr_pem = NULL;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509_REQ *r = X509_REQ_new();
    bool ok = k && r && X509_REQ_set_version(r, 0) && X509_REQ_set_pubkey(r, k) &&
              X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(r), "CN", MBSTRING_ASC,
                                         (const unsigned char *)cn, -1, -1, 0) &&
              X509_REQ_sign(r, k, EVP_sha256()) > 0;
    if (ok) {
        *key_pem = pem_of(write_key, k, NULL);
        *csr_pem = pem_of(write_req, r, NULL);
        ok = *key_pem && *csr_pem;
    }
    if (!ok) {
        ssl_reason(err, errsize, "cannot make a certificate request");
        free(*key_pem);
        free(*csr_pem);
        *key_pem = *csr_pem = NULL;
    }
    X509_REQ_free(r);
    EVP_PKEY_free(k);
    return ok ? 0 : -1;
}
