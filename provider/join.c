/* What a provider whose instances join for their certificate
 * (PROVIDER_CAP_JOIN: ec2, exec) needs of the manager's CA. */
#include "provider.h"
#include "../common/pki.h"

#include <stdio.h>

int provider_join_ca(struct provider *p, char **ca_pem, char *err, size_t errsize)
{
    *ca_pem = NULL;
    if (p->cfg->tls_mode != TLS_AUTO)
        return 0;
    /* The CA signs nothing here: it makes the join tokens, and its
     * certificate goes to every instance. */
    pki_dir(p->cfg, p->tls_dir, sizeof p->tls_dir);
    if (!(p->ca = pki_ca_open(p->tls_dir, err, errsize)))
        return -1;
    if (!(*ca_pem = pki_ca_pem(p->ca))) {
        snprintf(err, errsize, "cannot write the CA certificate as PEM");
        return -1;
    }
    return 0;
}
