package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// meridianBin is the meridian binary built once for the tests that run it
// as a separate process, as users do.
var meridianBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "meridian-bin")
	if err != nil {
		panic(err)
	}
	meridianBin = filepath.Join(dir, "meridian")
	args := []string{"build", "-o", meridianBin}
	if os.Getenv("MERIDIAN_RACE") != "" { // MERIDIAN_RACE=1: nodes built with the race detector
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		panic("building meridian: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func meridian(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(meridianBin, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
