/* A C ROS 2 stand-in on Debian's Cyclone DDS 0.10, endpoints as rmw_cyclonedds_cpp makes them:
 * topic rt/<name>, keyless final types without type information (idlc -t), XCDR1 only,
 * participant USER_DATA "enclave=/;", endpoint USER_DATA "typehash=RIHS01_...;".
 *   peer pub image|string TOPIC COUNT      (Image: 64x48 rgb8, data[i] = i % 256, stamp 7.5 s)
 *   peer echo image|string TOPIC COUNT     (one line per sample) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "dds/dds.h"
#include "ros_types.h"

#define IMAGE_HASH "typehash=RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47;"
#define STRING_HASH "typehash=RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18;"

static dds_qos_t *endpoint_qos(int reliable, const char *hash) {
  dds_qos_t *q = dds_create_qos();
  dds_qset_reliability(q, reliable ? DDS_RELIABILITY_RELIABLE : DDS_RELIABILITY_BEST_EFFORT, DDS_MSECS(100));
  dds_qset_history(q, DDS_HISTORY_KEEP_LAST, 10);
  dds_qset_durability(q, DDS_DURABILITY_VOLATILE);
  dds_data_representation_id_t xcdr1 = DDS_DATA_REPRESENTATION_XCDR1;
  dds_qset_data_representation(q, 1, &xcdr1);
  dds_qset_userdata(q, hash, strlen(hash));
  return q;
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: peer pub|echo image|string TOPIC COUNT\n"); return 2; }
  int pub = strcmp(argv[1], "pub") == 0, image = strcmp(argv[2], "image") == 0, count = atoi(argv[4]);
  char topic_name[256];
  snprintf(topic_name, sizeof topic_name, "rt%s", argv[3]);
  dds_qos_t *pq = dds_create_qos();
  dds_qset_userdata(pq, "enclave=/;", 10);
  const char *dom = getenv("ROS_DOMAIN_ID");
  dds_entity_t dp = dds_create_participant(dom ? atoi(dom) : 0, pq, NULL);
  if (dp < 0) { fprintf(stderr, "participant: %s\n", dds_strretcode(dp)); return 1; }
  const dds_topic_descriptor_t *desc = image ? &sensor_msgs_msg_dds__Image__desc : &std_msgs_msg_dds__String__desc;
  dds_entity_t tp = dds_create_topic(dp, desc, topic_name, NULL, NULL);
  if (tp < 0) { fprintf(stderr, "topic: %s\n", dds_strretcode(tp)); return 1; }
  dds_qos_t *q = endpoint_qos(pub ? 0 : 1, image ? IMAGE_HASH : STRING_HASH);
  dds_time_t deadline = dds_time() + DDS_SECS(30);
  if (pub) {
    dds_entity_t w = dds_create_writer(dp, tp, q, NULL);
    dds_publication_matched_status_t st;
    do { dds_sleepfor(DDS_MSECS(20)); dds_get_publication_matched_status(w, &st); }
    while (st.current_count == 0 && dds_time() < deadline);
    if (st.current_count == 0) { printf("no match\n"); return 1; }
    printf("matched\n"); fflush(stdout);
    dds_sleepfor(DDS_MSECS(300));
    static uint8_t pixels[64 * 48 * 3];
    for (unsigned i = 0; i < sizeof pixels; i++) pixels[i] = (uint8_t)(i % 256);
    for (int n = 0; n < count; n++) {
      if (image) {
        sensor_msgs_msg_dds__Image_ m = {0};
        m.header.stamp.sec = 7; m.header.stamp.nanosec = 500000000; m.header.frame_id = "c_cam";
        m.height = 48; m.width = 64; m.encoding = "rgb8"; m.step = 64 * 3;
        m.data._buffer = pixels; m.data._length = m.data._maximum = sizeof pixels;
        dds_write(w, &m);
      } else {
        std_msgs_msg_dds__String_ m = {.data = "hello from C"};
        dds_write(w, &m);
      }
      dds_sleepfor(DDS_MSECS(50));
    }
    printf("sent %d\n", count); fflush(stdout);
    dds_sleepfor(DDS_MSECS(500));
  } else {
    dds_entity_t r = dds_create_reader(dp, tp, q, NULL);
    printf("subscribed\n"); fflush(stdout);
    int got = 0;
    while (got < count && dds_time() < deadline) {
      void *samples[1] = {NULL};
      dds_sample_info_t info[1];
      int n = dds_take(r, samples, info, 1, 1);
      if (n > 0 && info[0].valid_data) {
        if (image) {
          sensor_msgs_msg_dds__Image_ *m = samples[0];
          unsigned sum = 0;
          for (unsigned i = 0; i < m->data._length; i++) sum += m->data._buffer[i];
          printf("image %s %ux%u step %u frame_id %s stamp %d.%09u bytes %u sum %u\n", m->encoding, m->width,
                 m->height, m->step, m->header.frame_id, m->header.stamp.sec, m->header.stamp.nanosec,
                 m->data._length, sum);
        } else {
          std_msgs_msg_dds__String_ *m = samples[0];
          printf("string %s\n", m->data);
        }
        fflush(stdout);
        got++;
      }
      if (n > 0) dds_return_loan(r, samples, n);
      else dds_sleepfor(DDS_MSECS(10));
    }
    return got >= count ? 0 : 1;
  }
  dds_delete(dp);
  return 0;
}
