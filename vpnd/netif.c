/* netif.c - placeholder */
