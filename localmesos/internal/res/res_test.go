package res

import (
	"errors"
	"fmt"
	"testing"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
)

func TestParseAndArithmetic(t *testing.T) {
	total, err := Parse("cpus:4;mem:4096;disk:10000;ports:[31000-32000]")
	if err != nil {
		t.Fatal(err)
	}
	task, err := Parse("cpus:0.1;mem:32;ports:[31000-31000]")
	if err != nil {
		t.Fatal(err)
	}
	if !total.Contains(task) {
		t.Fatal("total should contain the task")
	}
	left := total.Sub(task)
	if got := left.Scalar("cpus"); got != 3.9 {
		t.Fatalf("cpus left = %v, want 3.9", got)
	}
	if got := FormatRanges(left.Ranges("ports")); got != "[31001-32000]" {
		t.Fatalf("ports left = %s", got)
	}
	// 40 tasks of 0.1 cpu use exactly 4 cpus: fixed point, no drift.
	r := total
	for i := 0; i < 40; i++ {
		one, _ := Parse("cpus:0.1")
		if !r.Contains(one) {
			t.Fatalf("task %d does not fit", i)
		}
		r = r.Sub(one)
	}
	if r.Scalar("cpus") != 0 {
		t.Fatalf("cpus left %v", r.Scalar("cpus"))
	}
	back := left.Add(task)
	if !back.Contains(total) || !total.Contains(back) {
		t.Fatal("add after sub is not the original")
	}
	offer := total.ToProto(OfferRole, true)
	if offer[0].Name != "ports" || offer[1].Name != "cpus" || offer[3].Name != "disk" || offer[0].GetRole() != "*" {
		t.Fatalf("offer order/role wrong: %v", offer)
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"cpus", "cpus:-1", "cpus(role1):2", "ports:[5-1]", "ports:[1-2", ":3"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded", in)
		}
	}
}

func TestFromProtoRefusesUnimplemented(t *testing.T) {
	scalar := mesos.SCALAR
	role := "web"
	_, err := FromProto([]mesos.Resource{{Name: "cpus", Type: &scalar, Scalar: &mesos.Value_Scalar{Value: 1}, Role: &role}})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("reserved resource: %v", err)
	}
	_, err = FromProto([]mesos.Resource{{Name: "disk", Type: &scalar, Scalar: &mesos.Value_Scalar{Value: 1}, Disk: &mesos.Resource_DiskInfo{}}})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("volume: %v", err)
	}
}

func TestString(t *testing.T) {
	r, _ := Parse("cpus:100.1;mem:32")
	if got, want := r.String(), "cpus(allocated: *):100.1; mem(allocated: *):32"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
}

// TestSum is adding one at a time, in any order: scalars summed, ranges
// merged.
func TestSum(t *testing.T) {
	var items []Resources
	var one Resources
	for i := range 300 {
		port := 31000 + (i*7919)%1000 // every port once, out of order
		r, err := Parse(fmt.Sprintf("cpus:0.1;mem:32;ports:[%d-%d]", port, port))
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, r)
		one.AddInPlace(r)
	}
	sum := Sum(items...)
	if sum.String() != one.String() {
		t.Fatalf("Sum %s, one at a time %s", sum, one)
	}
	if got := sum.Scalar("cpus"); got != 30 {
		t.Errorf("cpus %v, want 30", got)
	}
	if got := len(sum.Ranges("ports")); got == 0 || got > 300 {
		t.Errorf("%d port ranges", got)
	}
	if Sum().String() != (Resources{}).String() {
		t.Errorf("the empty sum is %s", Sum())
	}
}
