/* backup.c: `parley backup`: a consistent copy of the SQLite database while the server writes it. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Pages copied per step: a few hundred kilobytes at a time, so that the copy never holds
 * SQLite's locks on the destination long, and a huge database still shows progress. */
#define STEP_PAGES 256

/* An SQLite result as an errno, for the caller that tells kinds of failure apart. */
static int errno_of(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_CANTOPEN:
		return -EROFS;
	case SQLITE_NOMEM:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* Copies every page of src (opened read-only) into the file at tmp, inside one read
 * transaction on src: in WAL mode that transaction is a snapshot which the server's
 * writer does not wait for, and the backup never restarts because of its commits. */
static int copy_pages(sqlite3 *src, const char *tmp, char *err, size_t errlen)
{
	sqlite3 *dst = NULL;
	sqlite3_backup *b = NULL;
	int rc = sqlite3_exec(src, "BEGIN; SELECT count(*) FROM sqlite_schema;", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot read the database: %s", sqlite3_errmsg(src));
		return errno_of(rc);
	}
	rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, dst ? sqlite3_errmsg(dst) : "out of memory");
		goto out;
	}
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (!b) {
		rc = sqlite3_errcode(dst);
		snprintf(err, errlen, "cannot start the copy: %s", sqlite3_errmsg(dst));
		goto out;
	}
	do {
		rc = sqlite3_backup_step(b, STEP_PAGES);
		/* Busy or locked only while another connection of ours holds a lock: wait a
		 * moment and go on with the same step. */
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(10);
	} while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
	int fin = sqlite3_backup_finish(b);
	if (rc == SQLITE_DONE)
		rc = fin;
	if (rc != SQLITE_OK && rc != SQLITE_DONE) {
		snprintf(err, errlen, "copy failed: %s", sqlite3_errstr(rc));
		goto out;
	}
	rc = SQLITE_OK;
out:
	sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
	/* Closing the copy's last connection folds its WAL into the file and removes it. */
	if (dst && sqlite3_close(dst) != SQLITE_OK && rc == SQLITE_OK) {
		snprintf(err, errlen, "cannot close %s", tmp);
		rc = SQLITE_IOERR;
	}
	return rc == SQLITE_OK ? 0 : errno_of(rc);
}

int store_backup(const char *path, const char *dest, bool force, char *err, size_t errlen)
{
	struct stat sb;
	if (!force && lstat(dest, &sb) == 0) {
		snprintf(err, errlen, "%s exists (--force replaces it)", dest);
		return -EEXIST;
	}
	if (stat(path, &sb) != 0) {
		snprintf(err, errlen, "no database %s: %s", path, strerror(errno));
		return -ENOENT;
	}
	/* The copy is built under a name of its own and renamed into place at the end, so that
	 * DEST is never a half-written database, whatever stops the copy. */
	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.partial-%ld", dest, (long)getpid()) >= sizeof tmp) {
		snprintf(err, errlen, "%s: path too long", dest);
		return -EINVAL;
	}
	unlink(tmp);
	sqlite3 *src = NULL;
	int rc = sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY, NULL);
	int res;
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open %s: %s", path, src ? sqlite3_errmsg(src) : "out of memory");
		res = errno_of(rc);
	} else {
		/* The server holds its write lock for a batch at most: wait that long. */
		sqlite3_busy_timeout(src, 5000);
		res = copy_pages(src, tmp, err, errlen);
	}
	sqlite3_close(src);
	if (res == 0) {
		/* Without --force, a DEST made meanwhile is not replaced either. */
		int r = force ? rename(tmp, dest) : renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE);
		if (r != 0) {
			res = errno == EEXIST ? -EEXIST : -errno;
			snprintf(err, errlen, "cannot move the copy to %s: %s", dest, strerror(errno));
		}
	}
	if (res != 0) {
		unlink(tmp);
		char side[4200];
		snprintf(side, sizeof side, "%s-journal", tmp);
		unlink(side);
		snprintf(side, sizeof side, "%s-wal", tmp);
		unlink(side);
		snprintf(side, sizeof side, "%s-shm", tmp);
		unlink(side);
	}
	return res;
}
