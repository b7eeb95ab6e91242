/* http_client.c - placeholder */
