// hyperaccel-go-kubelet-client: the device plugin's latency as the kubelet sees it. It dials the
// plugin's socket the way the kubelet's device manager does (grpc-go, insecure, a unix-socket
// dialer), opens ListAndWatch to learn the devices, then times GetPreferredAllocation and Allocate
// one call at a time. The stubs are generated at build time from the repository's copy of the
// v1beta1 .proto under the kubelet's own import path (k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1).
//
// -method limits the timing to one method (hyperaccel-footprint-bench runs each method in its own
// process, so that the plugin's counters over the run are that method's).
//
// Output, one line per run and method, for hyperaccel-footprint-bench and humans:
//
//	RESULT <method> <run> <p50 us> <p99 us> <max us> <client CPU us per call>
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"syscall"
	"time"

	"google.golang.org/grpc"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

func cpuMicros() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3
}

func report(method string, run int, us []float64, cpu float64) {
	sort.Float64s(us)
	p99 := len(us) * 99 / 100
	if p99 >= len(us) {
		p99 = len(us) - 1
	}
	fmt.Printf("RESULT %s %d %.1f %.1f %.1f %.1f\n", method, run, us[len(us)/2], us[p99], us[len(us)-1],
		cpu/float64(len(us)))
}

// timeCalls times len(us) calls of one method, one at a time, and reports them.
func timeCalls(method string, run int, us []float64, call func() error) {
	cpu0 := cpuMicros()
	for i := range us {
		t0 := time.Now()
		if err := call(); err != nil {
			fail("%s: %v", method, err)
		}
		us[i] = float64(time.Since(t0).Nanoseconds()) / 1e3
	}
	report(method, run, us, cpuMicros()-cpu0)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "hyperaccel-go-kubelet-client: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	socket := flag.String("socket", "", "the device plugin's unix socket (required)")
	iterations := flag.Int("iterations", 2000, "calls per run and method")
	runs := flag.Int("runs", 3, "runs")
	size := flag.Int("k", 4, "cards per GetPreferredAllocation request")
	method := flag.String("method", "both", "GetPreferredAllocation, Allocate or both")
	flag.Parse()
	timePreferred := *method == "both" || *method == "GetPreferredAllocation"
	timeAllocate := *method == "both" || *method == "Allocate"
	if *socket == "" || *iterations < 1 || *runs < 1 || *size < 1 || !(timePreferred || timeAllocate) {
		flag.Usage()
		os.Exit(2)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// As the kubelet's device manager dials a plugin (pkg/kubelet/cm/devicemanager/plugin/v1beta1).
	conn, err := grpc.DialContext(ctx, *socket, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}))
	if err != nil {
		fail("dial %s: %v", *socket, err)
	}
	defer conn.Close()
	client := pluginapi.NewDevicePluginClient(conn)

	if _, err := client.GetDevicePluginOptions(ctx, &pluginapi.Empty{}); err != nil {
		fail("GetDevicePluginOptions: %v", err)
	}
	stream, err := client.ListAndWatch(context.Background(), &pluginapi.Empty{})
	if err != nil {
		fail("ListAndWatch: %v", err)
	}
	list, err := stream.Recv()
	if err != nil {
		fail("ListAndWatch: %v", err)
	}
	var available []string
	for i, d := range list.Devices {
		if i%5 != 1 { // every fifth card busy, as in hyperaccel-footprint-bench
			available = append(available, d.ID)
		}
	}
	if len(available) < *size {
		fail("ListAndWatch: %d devices, %d available, %d asked", len(list.Devices), len(available), *size)
	}

	preferred := &pluginapi.PreferredAllocationRequest{ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{
		{AvailableDeviceIDs: available, AllocationSize: int32(*size)}}}
	first, err := client.GetPreferredAllocation(context.Background(), preferred)
	if err != nil || len(first.ContainerResponses) != 1 || len(first.ContainerResponses[0].DeviceIDs) != *size {
		fail("GetPreferredAllocation: %v (%v)", err, first)
	}
	allocate := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: first.ContainerResponses[0].DeviceIDs}}}

	callPreferred := func() error {
		_, err := client.GetPreferredAllocation(context.Background(), preferred)
		return err
	}
	callAllocate := func() error {
		_, err := client.Allocate(context.Background(), allocate)
		return err
	}
	// Untimed calls first: the kubelet is a long-running process, this one has just started.
	for i := 0; i < 200; i++ {
		if timePreferred {
			if err := callPreferred(); err != nil {
				fail("GetPreferredAllocation: %v", err)
			}
		}
		if timeAllocate {
			if err := callAllocate(); err != nil {
				fail("Allocate: %v", err)
			}
		}
	}
	us := make([]float64, *iterations)
	for run := 1; run <= *runs; run++ {
		if timePreferred {
			timeCalls("GetPreferredAllocation", run, us, callPreferred)
		}
		if timeAllocate {
			timeCalls("Allocate", run, us, callAllocate)
		}
	}
}
