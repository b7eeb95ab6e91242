/* wg.c - placeholder */
