package raft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ReadPeersJSON reads a peers.json file in the legacy format, a JSON array of
// server addresses such as ["10.0.0.1:8300","10.0.0.2:8300"], and returns the
// configuration it describes for RecoverCluster: every server a Voter whose ID
// is its address. The result has passed checkConfiguration.
func ReadPeersJSON(path string) (Configuration, error) {
	var addresses []string
	if err := readStrictJSON(path, &addresses); err != nil {
		return Configuration{}, fmt.Errorf("raft: read peers: %w", err)
	}
	var configuration Configuration
	for _, address := range addresses {
		configuration.Servers = append(configuration.Servers, Server{
			Suffrage: Voter,
			ID:       ServerID(address),
			Address:  ServerAddress(address),
		})
	}
	if err := checkConfiguration(configuration); err != nil {
		return Configuration{}, fmt.Errorf("raft: read peers: %s: %w", path, err)
	}
	return configuration, nil
}

// configJSONServer is one element of the peers.json format that carries
// server IDs.
type configJSONServer struct {
	// ID is the server's ServerID.
	ID string `json:"id"`
	// Address is the server's ServerAddress.
	Address string `json:"address"`
	// NonVoter makes the server a Nonvoter; absent or false means Voter.
	NonVoter bool `json:"non_voter"`
}

// ReadConfigJSON reads a peers.json file listing servers with their IDs, such
// as [{"id":"a","address":"10.0.0.1:8300","non_voter":false}], and returns
// the configuration it describes for RecoverCluster. The result has passed
// checkConfiguration.
//
// Keys other than "id", "address" and "non_voter" are refused: this file is
// written by hand during an outage, and a misspelt "non_voter" silently
// read as a Voter would change who forms a quorum.
func ReadConfigJSON(path string) (Configuration, error) {
	var servers []configJSONServer
	if err := readStrictJSON(path, &servers); err != nil {
		return Configuration{}, fmt.Errorf("raft: read config: %w", err)
	}
	var configuration Configuration
	for _, server := range servers {
		suffrage := Voter
		if server.NonVoter {
			suffrage = Nonvoter
		}
		configuration.Servers = append(configuration.Servers, Server{
			Suffrage: suffrage,
			ID:       ServerID(server.ID),
			Address:  ServerAddress(server.Address),
		})
	}
	if err := checkConfiguration(configuration); err != nil {
		return Configuration{}, fmt.Errorf("raft: read config: %s: %w", path, err)
	}
	return configuration, nil
}

// readStrictJSON decodes the file at path into out, refusing unknown object
// keys and anything after the first JSON value. Its errors name the file.
func readStrictJSON(path string, out any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err // already names the file
	}
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(out); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: file is empty", path)
		}
		return fmt.Errorf("%s: malformed JSON: %w", path, err)
	}
	if _, err := decoder.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: malformed JSON: unexpected data after the top-level array", path)
	}
	return nil
}
