"""The fault suite's harness: throwaway servers, worker processes, waiting, integrity checks."""
