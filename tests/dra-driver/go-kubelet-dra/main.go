// hyperaccel-go-kubelet-dra: the kubelet's side of a DRA plugin, in grpc-go, the kubelet's gRPC, for
// the DRA driver's tests. It dials the plugin's registration socket by path (as the kubelet's
// plugin watcher does), calls GetInfo and NotifyRegistrationStatus, dials the advertised endpoint
// by path, prepares and unprepares one claim through DRAPlugin v1 and v1beta1, and reads the first
// NodeWatchResources message. Every answer is checked; any failure exits 1 with a message.
//
// Output, one line per step, for the test:
//
//	INFO <type> <name> <endpoint> <versions>
//	PREPARED <version> <claim uid> <CDI device IDs>
//	UNPREPARED <version> <claim uid>
//	HEALTH <devices>
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	drahealth "k8s.io/kubelet/pkg/apis/dra-health/v1alpha1"
	drav1 "k8s.io/kubelet/pkg/apis/dra/v1"
	drav1beta1 "k8s.io/kubelet/pkg/apis/dra/v1beta1"
	registration "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "hyperaccel-go-kubelet-dra: "+format+"\n", args...)
	os.Exit(1)
}

// dial connects to a unix socket by path, as the kubelet does.
func dial(ctx context.Context, path string) *grpc.ClientConn {
	conn, err := grpc.DialContext(ctx, path, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}))
	if err != nil {
		fail("dial %s: %v", path, err)
	}
	return conn
}

func main() {
	socket := flag.String("registration", "", "the plugin's registration socket (required)")
	namespace := flag.String("namespace", "default", "the claim's namespace")
	name := flag.String("claim", "go-claim", "the claim's name")
	uid := flag.String("uid", "uid-go", "the claim's UID")
	flag.Parse()
	if *socket == "" {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	reg := dial(ctx, *socket)
	defer reg.Close()
	regClient := registration.NewRegistrationClient(reg)
	info, err := regClient.GetInfo(ctx, &registration.InfoRequest{})
	if err != nil {
		fail("GetInfo: %v", err)
	}
	if info.Type != "DRAPlugin" || info.Endpoint == "" || len(info.SupportedVersions) == 0 {
		fail("GetInfo: unexpected answer %v", info)
	}
	fmt.Printf("INFO %s %s %s %s\n", info.Type, info.Name, info.Endpoint, strings.Join(info.SupportedVersions, ","))

	conn := dial(ctx, info.Endpoint)
	defer conn.Close()
	if _, err := regClient.NotifyRegistrationStatus(ctx, &registration.RegistrationStatus{PluginRegistered: true}); err != nil {
		fail("NotifyRegistrationStatus: %v", err)
	}

	v1 := drav1.NewDRAPluginClient(conn)
	prepared, err := v1.NodePrepareResources(ctx, &drav1.NodePrepareResourcesRequest{
		Claims: []*drav1.Claim{{Namespace: *namespace, Name: *name, Uid: *uid}}})
	if err != nil {
		fail("NodePrepareResources v1: %v", err)
	}
	answer, ok := prepared.Claims[*uid]
	if !ok || answer.Error != "" || len(answer.Devices) == 0 {
		fail("NodePrepareResources v1: unexpected answer %v", prepared)
	}
	var ids []string
	for _, d := range answer.Devices {
		ids = append(ids, d.CdiDeviceIds...)
	}
	fmt.Printf("PREPARED v1 %s %s\n", *uid, strings.Join(ids, ","))

	v1beta1 := drav1beta1.NewDRAPluginClient(conn)
	unprepared, err := v1beta1.NodeUnprepareResources(ctx, &drav1beta1.NodeUnprepareResourcesRequest{
		Claims: []*drav1beta1.Claim{{Namespace: *namespace, Name: *name, Uid: *uid}}})
	if err != nil {
		fail("NodeUnprepareResources v1beta1: %v", err)
	}
	if a, ok := unprepared.Claims[*uid]; !ok || a.Error != "" {
		fail("NodeUnprepareResources v1beta1: unexpected answer %v", unprepared)
	}
	fmt.Printf("UNPREPARED v1beta1 %s\n", *uid)

	health := drahealth.NewDRAResourceHealthClient(conn)
	stream, err := health.NodeWatchResources(ctx, &drahealth.NodeWatchResourcesRequest{})
	if err != nil {
		fail("NodeWatchResources: %v", err)
	}
	first, err := stream.Recv()
	if err != nil {
		fail("NodeWatchResources: %v", err)
	}
	fmt.Printf("HEALTH %d\n", len(first.Devices))
}
