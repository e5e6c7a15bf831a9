package store

import (
	"errors"
	"testing"
)

func TestCheckPassword(t *testing.T) {
	s, k := openUnlock(t, newStorePath(t, testKDF))
	defer closeBoth(t, s, k)
	if err := k.CheckPassword(testPassword); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := k.CheckPassword([]byte("FAKE-wrong")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v, want ErrWrongPassword", err)
	}
	k.Close()
	if err := k.CheckPassword(testPassword); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed keyring: %v, want ErrClosed", err)
	}
}
