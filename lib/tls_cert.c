/* tls_cert.c - placeholder */
