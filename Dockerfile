# flashsale: the checkout server and the load driver in one image, FROM scratch: nothing but the
# two static binaries (both in one image so every container can run `/driver probe` as its
# healthcheck; a scratch image has no shell or curl).
#
# The binaries are built on the host first:
#     scripts/build-static.sh        # static server and driver into dist/
#     docker compose build           # or: docker build -t flashsale:local .
# If dist/ is empty the first COPY fails naming the missing file dist/built-by-scripts-build-static.sh:
# run that script. /etc/hosts and /etc/resolv.conf are provided by Docker at run time; with
# static glibc they are all name resolution needs (compose service names come from Docker's DNS).
FROM scratch
COPY dist/built-by-scripts-build-static.sh /etc/flashsale-build
COPY dist/server dist/driver /
# No /etc/passwd needed: nothing looks users up. Run as an unprivileged numeric user.
USER 10001:10001
# Container logs go to a log driver, not a terminal: no ANSI colours (tracing honours NO_COLOR).
ENV NO_COLOR=1
EXPOSE 50051 7000
ENTRYPOINT ["/server"]
