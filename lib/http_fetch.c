/* http_fetch.c - placeholder */
