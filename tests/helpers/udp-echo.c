/* A UDP echo server for the route tests: busybox's nc has no UDP. Built statically by the test
 * harness (gcc -static) and added to a derived test image. Usage: udp-echo PORT */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(argc > 1 ? atoi(argv[1]) : 5520);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) return 1;
    char buf[65536];
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n >= 0) sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
    }
}
