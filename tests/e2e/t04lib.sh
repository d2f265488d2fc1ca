# tests/e2e/t04lib.sh - helpers of the t04xx scripts (restore fidelity and
# safety): a tree with every kind of entry and metadata, and a dump of a
# tree that compares everything a restore must keep. Sourced after lib.sh.

is_root() { [ "$(id -u)" = 0 ]; }

# mk_tree DIR: DIR/main (every kind of entry, xattrs, ACLs, a sparse file,
# odd names; devices and owners only as root) and DIR/deep (a path longer
# than PATH_MAX as a whole).
mk_tree() {
	local d=$1
	mkdir -p "$d/main/sub" "$d/main/empty" "$d/main/setgid" "$d/main/sticky" "$d/main/acldir"
	echo "hello" > "$d/main/a"
	ln "$d/main/a" "$d/main/b"
	ln "$d/main/a" "$d/main/sub/c"
	echo x > "$d/main/suid"; chmod 4755 "$d/main/suid"
	chmod 2775 "$d/main/setgid"; chmod 1777 "$d/main/sticky"
	echo y > "$d/main/sgidfile"; chmod 2711 "$d/main/sgidfile"
	ln -s a "$d/main/link"
	ln "$d/main/link" "$d/main/link2"     # a hard link to a symlink
	ln -s /nonexistent "$d/main/dangling"
	mkfifo -m 0640 "$d/main/fifo"
	ln "$d/main/fifo" "$d/main/fifo2"
	if [ "$(id -u)" = 0 ]; then
		mknod -m 0660 "$d/main/null" c 1 3
		mknod -m 0600 "$d/main/loop" b 7 200
		echo o > "$d/main/owned-num"; chown 1234:5678 "$d/main/owned-num"
		echo o > "$d/main/owned-name"; chown daemon:daemon "$d/main/owned-name"
		chown 4321:4322 "$d/main/sub"
	fi
	echo xa > "$d/main/xattrs"
	setfattr -n user.plain -v hello "$d/main/xattrs"
	setfattr -n user.binary -v 0x00ff00fe "$d/main/xattrs"
	setfattr -n user.empty "$d/main/xattrs"
	setfattr -n user.dirattr -v d "$d/main/sub"
	echo acl > "$d/main/acl"
	setfacl -m u:1234:rw-,g:5:r--,u:daemon:r-x "$d/main/acl"
	setfacl -m u:1234:rwx "$d/main/acldir"
	setfacl -d -m u:1234:rwx,g:daemon:r-x "$d/main/acldir"
	mkdir "$d/main/acldir/inner"; echo inherit > "$d/main/acldir/inner/f"
	printf 'nl\n' > "$d/main/new"$'\n'"line"
	printf 'bad\n' > "$d/main/bad-"$'\xff\xfe'"-utf8"
	mkdir "$d/main/dir"$'\n'"nl"
	printf 'start' > "$d/main/sparse"
	truncate -s 64M "$d/main/sparse"
	printf 'middle' | dd of="$d/main/sparse" bs=1 seek=$((30 * 1024 * 1024)) conv=notrunc status=none
	truncate -s 100M "$d/main/sparse"
	head -c 3000000 /dev/zero > "$d/main/zeros-dense"
	touch -h -d '2001-02-03 04:05:06.123456789' "$d/main/link"
	touch -d '2010-01-01 00:00:00.5' "$d/main/a"
	touch -d '1999-12-31 23:59:59.999999999' "$d/main/empty"
	touch -d '2020-02-02 02:02:02.020202020' "$d/main/sub"
	# deeper than PATH_MAX as a whole
	python3 - "$d/deep" <<'PY'
import os, sys
top = sys.argv[1]
os.mkdir(top)
fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
for i in range(24):
    name = ("level%02d-" % i) + "x" * 240
    os.mkdir(name, dir_fd=fd)
    nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd); fd = nfd
f = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
os.write(f, b"deep leaf\n"); os.close(f)
os.symlink("leaf.txt", "leaf-link", dir_fd=fd)
os.close(fd)
PY
}

# tree_dump DIR: one line per entry below DIR, walked by file descriptor
# (so at any depth): path, mode, uid, gid, mtime ns, size, rdev, link
# target, content hash, every xattr (POSIX ACLs included, as the kernel
# holds them), and the first path of its inode when it has several links.
tree_dump() {
	python3 - "$1" "${2:-}" <<'PY'
import hashlib, os, stat, sys
top, opts = sys.argv[1], sys.argv[2]
out = []
inodes = {}
def walk(dfd, rel):
    for name in sorted(os.listdir(dfd)):
        p = rel + "/" + name if rel else name
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        m = st.st_mode
        link = os.readlink(name, dir_fd=dfd) if stat.S_ISLNK(m) else "-"
        h = "-"
        if stat.S_ISREG(m):
            fd = os.open(name, os.O_RDONLY, dir_fd=dfd)
            hh = hashlib.sha256()
            while True:
                b = os.read(fd, 1 << 20)
                if not b: break
                hh.update(b)
            os.close(fd)
            h = hh.hexdigest()[:16]
        src = "/proc/self/fd/%d/%s" % (dfd, name)
        try:
            xs = sorted((k, os.getxattr(src, k, follow_symlinks=False).hex()) for k in os.listxattr(src, follow_symlinks=False))
        except OSError:
            xs = "?"
        grp = "-"
        if not stat.S_ISDIR(m) and st.st_nlink > 1:
            grp = inodes.setdefault((st.st_dev, st.st_ino), p)
        rdev = "%d,%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)) if (stat.S_ISCHR(m) or stat.S_ISBLK(m)) else "-"
        mt = st.st_mtime_ns if "nomtime-link" not in opts or not stat.S_ISLNK(m) else 0
        if stat.S_ISDIR(m):
            size = "-"
        else:
            size = st.st_size
        out.append("%r %o %d %d %d %s %s %r %s %s %r" % (p, m, st.st_uid, st.st_gid, mt, size, rdev, link, h, xs, grp))
        if stat.S_ISDIR(m):
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd)
            walk(nfd, p)
            os.close(nfd)
top_fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
walk(top_fd, "")
print("\n".join(out))
PY
}

# sparse_ok FILE: the file has a hole and uses less than a quarter of its
# size on disk.
sparse_ok() {
	python3 - "$1" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
st = os.fstat(fd)
hole = os.lseek(fd, 0, os.SEEK_HOLE)
sys.exit(0 if hole < st.st_size and st.st_blocks * 512 < st.st_size // 4 else 1)
PY
}
