/* store_sqlite.c - placeholder */
