package native

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"path"
	"strings"

	"github.com/sluicehq/sluice/services/gateway/internal/ingest"
)

// The files of an agent archive (seed 004), by the archive types that
// carry them.
var archiveFiles = []string{"manifest.json", "activity.json", "inspector_log.json", "service_log.json", "timetracking_log.json"}

// archiveLimits bound what reading one archive may cost.
type archiveLimits struct {
	maxEntries int   // entries in the zip directory, directories included
	maxTotal   int64 // uncompressed bytes of the files read
	maxRatio   int64 // uncompressed/compressed of one entry over 1 MiB
}

// archive holds the agent files read from a zip.
type archive struct {
	files map[string][]byte // by file name (manifest.json, ...)
	// ignored lists entries not read, each with why.
	ignored []string
	quirks  []string
}

// readArchive reads an agent archive within the limits. It refuses the
// whole archive (HTTPError) when it is not a zip, holds too many entries,
// would inflate past the limits (declared or actual sizes), is encrypted,
// or names a path that escapes the archive (absolute, drive letter, ".."):
// such an archive is malformed or hostile, not an agent's. The agent files
// may sit at the top or inside one folder; other entries are listed in
// ignored and not read, including nested zips (archive containers are not
// expanded).
func readArchive(b []byte, lim archiveLimits) (*archive, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, ingest.Errorf(http.StatusBadRequest, "invalid_archive", "the body is not a zip archive: %v", err)
	}
	if len(zr.File) > lim.maxEntries {
		return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "too_many_entries",
			"the archive has %d entries, over the limit of %d", len(zr.File), lim.maxEntries)
	}
	a := &archive{files: map[string][]byte{}}
	type pick struct {
		f    *zip.File
		name string
	}
	var picks []pick
	folders := map[string]bool{}
	for _, f := range zr.File {
		name := f.Name
		if strings.Contains(name, "\\") {
			// Some Windows zip writers use backslashes.
			name = strings.ReplaceAll(name, "\\", "/")
			a.addQuirk("zip_backslash_paths")
		}
		if err := safeZipPath(name); err != nil {
			return nil, ingest.Errorf(http.StatusBadRequest, "unsafe_archive_path", "entry %q: %v", f.Name, err)
		}
		if strings.HasSuffix(name, "/") {
			continue // a directory entry
		}
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if strings.Contains(dir, "/") {
			a.ignored = append(a.ignored, f.Name+": nested more than one folder deep")
			continue
		}
		if strings.EqualFold(path.Ext(base), ".zip") {
			a.ignored = append(a.ignored, f.Name+": nested archives are not expanded")
			continue
		}
		if !isArchiveFile(base) {
			a.ignored = append(a.ignored, f.Name+": not an agent file")
			continue
		}
		folders[dir] = true
		picks = append(picks, pick{f, base})
	}
	if len(folders) > 1 {
		return nil, ingest.Errorf(http.StatusBadRequest, "ambiguous_archive", "the agent files are spread over several folders")
	}
	var total int64
	for _, p := range picks {
		f := p.f
		if _, dup := a.files[p.name]; dup {
			return nil, ingest.Errorf(http.StatusBadRequest, "duplicate_entry", "the archive holds %s twice", p.name)
		}
		if f.Flags&0x1 != 0 {
			return nil, ingest.Errorf(http.StatusBadRequest, "encrypted_archive", "entry %q is encrypted", f.Name)
		}
		size := f.UncompressedSize64
		if size > uint64(lim.maxTotal-total) {
			return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "archive_too_large",
				"the archive's files inflate past %d bytes", lim.maxTotal)
		}
		if size > 1<<20 && lim.maxRatio > 0 && size/max(f.CompressedSize64, 1) > uint64(lim.maxRatio) {
			return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "archive_ratio",
				"entry %q inflates more than %d times", f.Name, lim.maxRatio)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, ingest.Errorf(http.StatusBadRequest, "invalid_archive", "entry %q cannot be read: %v", f.Name, err)
		}
		// Read at most what is left of the budget, plus one byte to tell a
		// lying size header from an honest one.
		data, err := io.ReadAll(io.LimitReader(rc, lim.maxTotal-total+1))
		_ = rc.Close()
		if int64(len(data)) > lim.maxTotal-total {
			return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "archive_too_large",
				"the archive's files inflate past %d bytes", lim.maxTotal)
		}
		if err != nil {
			return nil, ingest.Errorf(http.StatusBadRequest, "invalid_archive", "entry %q is corrupt: %v", f.Name, err)
		}
		total += int64(len(data))
		a.files[p.name] = data
	}
	return a, nil
}

func (a *archive) addQuirk(q string) {
	for _, x := range a.quirks {
		if x == q {
			return
		}
	}
	a.quirks = append(a.quirks, q)
}

func isArchiveFile(name string) bool {
	for _, f := range archiveFiles {
		if name == f {
			return true
		}
	}
	return false
}

// safeZipPath refuses entry names that would escape an extraction folder.
// Nothing is extracted to disk, but such a name never comes from an agent.
func safeZipPath(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case strings.HasPrefix(name, "/"):
		return errors.New("absolute path")
	case len(name) >= 2 && name[1] == ':':
		return errors.New("drive letter")
	case strings.ContainsRune(name, 0):
		return errors.New("NUL in name")
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return errors.New("path traversal (..)")
		}
	}
	return nil
}

// archiveFromMultipart returns the archive part of a multipart/form-data
// body: the part named archive, archive.zip or file, else the first part
// that carries a file name. It reads at most limit bytes of it.
func archiveFromMultipart(r *http.Request, boundary string, limit int64) ([]byte, error) {
	if boundary == "" {
		return nil, ingest.Errorf(http.StatusBadRequest, "invalid_multipart", "multipart/form-data without a boundary")
	}
	// The whole body, headers of the other parts included, stays within
	// the body limit.
	mr := multipart.NewReader(http.MaxBytesReader(nil, r.Body, limit+64<<10), boundary)
	for parts := 0; ; parts++ {
		if parts == 16 {
			return nil, ingest.Errorf(http.StatusBadRequest, "missing_archive", "no archive among the first 16 parts")
		}
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, ingest.Errorf(http.StatusBadRequest, "missing_archive", "the form has no archive part (send the zip as a file, e.g. archive.zip)")
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "body is over the %d-byte limit", limit)
			}
			return nil, ingest.Errorf(http.StatusBadRequest, "invalid_multipart", "reading the form: %v", err)
		}
		fn := p.FormName()
		if p.FileName() == "" && fn != "archive" && fn != "archive.zip" && fn != "file" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(p, limit+1))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "body is over the %d-byte limit", limit)
			}
			return nil, ingest.Errorf(http.StatusBadRequest, "invalid_multipart", "reading the archive part: %v", err)
		}
		if int64(len(data)) > limit {
			return nil, ingest.Errorf(http.StatusRequestEntityTooLarge, "body_too_large", "the archive is over the %d-byte limit", limit)
		}
		return data, nil
	}
}
