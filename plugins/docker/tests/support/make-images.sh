#!/usr/bin/env bash
# Builds the two images the plugin's tests run, without a registry, from the
# host's Debian files (`docker import` of a directory). Idempotent: an image
# carrying this script's version label is kept.
#
#   playground-test/busybox:latest  busybox-static with its applets in /bin
#   playground-test/python:latest   the host's python3.11 with pip, its
#                                   shared libraries and busybox sh
#
# Both run with --network none --user 65534:65534 --read-only.
# Needs: docker (DOCKER_HOST set), busybox-static, python3.11, python3-pip.
set -euo pipefail

version=3
busybox=/bin/busybox
python=/usr/bin/python3.11

current() {
    docker image inspect --format '{{index .Config.Labels "playground.test-image"}}' "$1" 2>/dev/null || true
}

for need in "$busybox" "$python" /usr/lib/python3/dist-packages/pip; do
    if [[ ! -e "$need" ]]; then
        echo "make-images: $need is missing (apt-get install busybox-static python3.11 python3-pip)" >&2
        exit 1
    fi
done
if ! "$busybox" --list | grep -qx sh || ldd "$busybox" >/dev/null 2>&1; then
    echo "make-images: $busybox is not the static busybox (apt-get install busybox-static)" >&2
    exit 1
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# A root file system's common part: busybox and its applets, users, /tmp.
base_rootfs() {
    local root=$1
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/work"
    chmod 1777 "$root/tmp"
    cp "$busybox" "$root/bin/busybox"
    local applet
    for applet in $("$busybox" --list); do
        [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

import() {
    local root=$1 image=$2
    tar -C "$root" -c . | docker import \
        --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
        --change "LABEL playground.test-image=$version" \
        - "$image" >/dev/null
    echo "make-images: built $image"
}

image=playground-test/busybox:latest
if [[ "$(current "$image")" == "$version" ]]; then
    echo "make-images: $image is current"
else
    root="$scratch/busybox"
    base_rootfs "$root"
    import "$root" "$image"
fi

image=playground-test/python:latest
if [[ "$(current "$image")" == "$version" ]]; then
    echo "make-images: $image is current"
else
    root="$scratch/python"
    base_rootfs "$root"
    mkdir -p "$root/usr/bin" "$root/usr/lib/python3/dist-packages" "$root/etc"
    cp "$python" "$root/usr/bin/python3.11"
    ln -s python3.11 "$root/usr/bin/python3"
    cp -a /usr/lib/python3.11 "$root/usr/lib/python3.11"
    # The image is the tests' own: pip may install into it.
    rm -f "$root/usr/lib/python3.11/EXTERNALLY-MANAGED"
    if [[ -d /etc/python3.11 ]]; then
        cp -a /etc/python3.11 "$root/etc/python3.11"
    fi
    cp -a /usr/lib/python3/dist-packages/pip /usr/lib/python3/dist-packages/pip-*.dist-info \
        "$root/usr/lib/python3/dist-packages/"
    # The interpreter's and its extension modules' shared libraries, at the
    # paths the dynamic linker names.
    {
        ldd "$python"
        find /usr/lib/python3.11/lib-dynload -name '*.so' -exec ldd {} \;
    } | grep -oE '/[^ ]+\.so[^ ]*' | sort -u | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    import "$root" "$image"
fi
