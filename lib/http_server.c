/* http_server.c - placeholder */
